// Package gateway owns the per-user XMPP streams of xmppgw: it logs users in
// (mellium.im/xmpp negotiates each session: STARTTLS, SASL through
// mellium.im/sasl, resource binding), keeps one reader goroutine per stream,
// translates stanzas to JSON events and JSON requests to stanzas, and
// reconnects dropped streams.
//
// It is the only package that speaks XMPP to the server. It knows nothing
// of HTTP or of the API's tokens: events leave through the small Publisher
// interface (implemented by package sse) and requests arrive as plain Go
// values. The one JWT it makes is XMPP-side: the token of an on-behalf
// login, which the XMPP server checks (credentials.go).
package gateway
