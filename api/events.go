package api

import (
	"net/http"

	"github.com/xmppgw/xmppgw/gateway"
	"github.com/xmppgw/xmppgw/sse"
)

// streamEvents godoc
//
//	@Summary		Receive the stream's events (SSE)
//	@Description	A text/event-stream of unnamed events (so EventSource.onmessage sees them all). Each has an "id:" line and one JSON object with a "type":
//	@Description	- chat / normal / headline: {type,id,from,to,body,subject?,thread?,data?,stamp?,stanza_id?}
//	@Description	- error: a bounced message {type:"error",id,from,to,error:{type,condition,text?}}
//	@Description	- presence: {type:"presence",from,to,presence_type,show,status} (presence_type is available, unavailable, subscribe, ...; unavailable reports show "offline")
//	@Description	- stream: {type:"stream",state:"online|reconnecting|offline",jid,reason?,attempt?}
//	@Description	- reset: {type:"reset",last_event_id,oldest_id,reason}: the Last-Event-ID given is older than the replay buffer; retained events follow.
//	@Description	Resume with the Last-Event-ID header (browsers send it on reconnect) or ?last_event_id=. Without either, the stream's retained events are replayed first. EventSource cannot send headers: pass the token as ?token=.
//	@Tags			events
//	@Produce		text/event-stream
//	@Param			streamid		path		string	true	"stream id"
//	@Param			token			query		string	false	"bearer token (for EventSource; or the HttpOnly cookie set by login with ?cookie=true)"
//	@Param			last_event_id	query		string	false	"resume after this event id"
//	@Param			Last-Event-ID	header		string	false	"resume after this event id"
//	@Success		200				{string}	string	"event stream"
//	@Failure		401				{object}	ErrorResponse
//	@Failure		404				{object}	ErrorResponse
//	@Failure		429				{object}	ErrorResponse	"too many subscribers"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/events [get]
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request, p *principal, st *gateway.Stream) error {
	// The idle clock restarts when the last subscriber leaves.
	opts := sse.ServeOptions{OnClose: st.Touch}
	if p.claims != nil {
		// The connection may not outlive the token that opened it, nor its
		// revocation (Cloudonix model: revoking drops every connection).
		ctx, release := s.tokens.tokenLife(p.claims)
		opts.Context = ctx
		opts.OnClose = func() {
			release()
			st.Touch()
		}
	}
	// On HTTP/1 this returns once the stream is set up; the connection then
	// belongs to the broker, and OnClose runs when it ends.
	return s.events.Serve(w, r, st.ID(), opts)
}
