package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/xmppgw/xmppgw/internal/cluster"
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
//	@Description	- reset: {type:"reset",last_event_id,oldest_id,reason}: the Last-Event-ID given is older than the replay buffer (or, in cluster mode, from another life of the stream's log, e.g. after Redis lost it); retained events follow.
//	@Description	Ids are integers counting up; in cluster mode they read "<n>.<epoch>" and any node serves the stream's events (resume with the id as given).
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
//	@Failure		410				{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Failure		429				{object}	ErrorResponse	"too many subscribers"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/events [get]
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request, p *principal, t eventTarget) error {
	unmirror, err := s.mirrorEvents(r.Context(), t.id)
	if err != nil {
		return err
	}
	// The idle clock restarts when the last subscriber leaves.
	opts := sse.ServeOptions{OnClose: func() {
		unmirror()
		t.touch()
	}}
	if p.claims != nil {
		// The connection may not outlive the token that opened it, nor its
		// revocation (Cloudonix model: revoking drops every connection).
		ctx, release := s.tokens.tokenLife(p.claims)
		opts.Context = ctx
		opts.OnClose = func() {
			release()
			unmirror()
			t.touch()
		}
	}
	// On HTTP/1 this returns once the stream is set up; the connection then
	// belongs to the broker, and OnClose runs when it ends.
	return s.events.Serve(w, r, t.id, opts)
}

// EventRelay mirrors the cluster's event log of a stream into this node's
// broker, under the stream id, while someone here reads it (cluster mode;
// cluster.Relay).
type EventRelay interface {
	// Acquire returns once the local topic holds the log's history; call
	// release when the reader is gone.
	Acquire(ctx context.Context, streamID string) (release func(), err error)
}

// relayWait bounds how long a subscriber waits for the cluster's log:
// beyond it Redis is not answering, and 503 says so.
const relayWait = 5 * time.Second

// mirrorEvents makes the stream's events readable from this node's broker:
// a no-op in single-node mode, where the gateway publishes there itself.
func (s *Server) mirrorEvents(ctx context.Context, streamID string) (release func(), err error) {
	if s.cfg.Relay == nil {
		return func() {}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, relayWait)
	defer cancel()
	release, err = s.cfg.Relay.Acquire(ctx, streamID)
	switch {
	case err == nil:
		return release, nil
	case errors.Is(err, cluster.ErrStreamEnded):
		return nil, errStreamNotFound
	default:
		return nil, errClusterNotReady.wrap("the stream's events cannot be read from the cluster store: %v", err)
	}
}

// eventTarget is the stream an events request reads: one this node holds
// (st set), or in cluster mode one held by another node, known by its
// registry record.
type eventTarget struct {
	id   string
	user string // bare JID, for the audit log
	st   interface{ Touch() }
}

// touch restarts a local stream's idle clock; a remote stream's owner
// learns of its readers from the cluster (its watchers).
func (t eventTarget) touch() {
	if t.st != nil {
		t.st.Touch()
	}
}

// eventHandlerFunc is an events route's handler.
type eventHandlerFunc func(w http.ResponseWriter, r *http.Request, p *principal, t eventTarget) error

// resolveEventTarget finds the stream of an events request in cluster mode:
// this node's own first, else the cluster's registry, with the same rules
// as resolveStream (an admin any stream, a user token the user's own).
// HTTP Basic users are checked against the streams of this node only: their
// password is verified by the stream that holds it.
func (s *Server) resolveEventTarget(ctx context.Context, p *principal, id string) (eventTarget, error) {
	st, err := s.resolveStream(p, id)
	if err == nil {
		return eventTarget{id: st.ID(), user: st.User().String(), st: st}, nil
	}
	if p.claims == nil && !p.admin {
		return eventTarget{}, err
	}
	if id == "" && !p.admin {
		id = p.claims.SID
	}
	if id == "" {
		return eventTarget{}, err
	}
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rec, lerr := s.cfg.ClusterStream(lctx, id)
	switch {
	case errors.Is(lerr, cluster.ErrNotRegistered):
		return eventTarget{}, errStreamNotFound
	case lerr != nil:
		return eventTarget{}, errClusterNotReady.wrap("looking the stream up: %v", lerr)
	case !p.admin && rec.JID != p.user.String():
		return eventTarget{}, errStreamNotFound
	}
	return eventTarget{id: id, user: rec.JID}, nil
}
