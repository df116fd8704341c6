// Package api is the HTTP face of xmppgw: the chi router, one file per
// resource, authentication, and the single error mapper. It talks to XMPP
// only through package gateway's types and never speaks XMPP itself.
//
//	@title						xmppgw API
//	@version					0.1
//	@description				REST + Server-Sent Events gateway over XMPP. Log in to get a stream id and a token, drive the stream with REST calls and receive its stanzas as JSON events over SSE.
//	@BasePath					/
//	@securityDefinitions.apikey	BearerAuth
//	@in							header
//	@name						Authorization
//	@description				"Bearer TOKEN" with the token login returned.
//	@securityDefinitions.basic	BasicAuth
package api
