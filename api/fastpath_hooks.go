package api

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/go-chi/chi/v5"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/xmppgw/xmppgw/fastpath"
	"github.com/xmppgw/xmppgw/gateway"
)

// fastpathStream is what the queues' hooks need of a stream on this node
// (gateway.Stream has it).
type fastpathStream interface {
	PublishEvent(event any)
	Offerable() bool
	InRoom(room string) bool
}

// fastpathEventPath is the internal route where the queues' leader hands
// an event to the node holding its stream.
const fastpathEventPath = "/internal/v1/streams/{streamid}/fastpath-event"

// Bounds of the leader's hooks.
const (
	// remoteEventQueue is how many events for streams on other nodes may
	// wait for delivery; beyond it an event is dropped (logged): the
	// engine's hooks run under its lock and must never wait.
	remoteEventQueue = 1024
	// presenceTTL is how long a remote stream's presence is reused; the
	// engine asks for every agent on each tick.
	presenceTTL       = 500 * time.Millisecond
	presenceCacheSize = 4096
)

// FastpathHooks connect the cluster's queues, on the leader, to streams
// wherever they are: on this node directly; on another node, events go to
// its internal listener (in order, by one goroutine), and availability and
// rooms come from the stream's takeover state in the registry. Close ends
// the delivery goroutine.
type FastpathHooks struct {
	s         *Server
	events    chan remoteEvent
	presences *lru.Cache[string, cachedPresence]
	ctx       context.Context // ends the delivery (Close)
	cancel    context.CancelFunc
	done      chan struct{}
}

type remoteEvent struct {
	stream string
	data   []byte
}

type cachedPresence struct {
	state gateway.TakeoverState
	found bool
	until time.Time
}

// NewFastpathHooks returns the hooks for the leader's engine and starts
// their delivery goroutine.
func (s *Server) NewFastpathHooks() *FastpathHooks {
	presences, _ := lru.New[string, cachedPresence](presenceCacheSize) // errors only for a size ≤ 0
	ctx, cancel := context.WithCancel(context.Background())
	h := &FastpathHooks{s: s, events: make(chan remoteEvent, remoteEventQueue), presences: presences,
		ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go h.deliver() // exits at Close
	return h
}

// Close stops the delivery of queued events. It is idempotent.
func (h *FastpathHooks) Close() {
	h.cancel()
	<-h.done
}

func (h *FastpathHooks) local(stream string) (fastpathStream, bool) {
	st, err := h.s.streams.Stream(stream)
	if err != nil {
		return nil, false
	}
	fs, ok := st.(fastpathStream)
	return fs, ok
}

// Publish implements fastpath.Hooks.
func (h *FastpathHooks) Publish(stream string, event any) {
	if st, ok := h.local(stream); ok {
		st.PublishEvent(event)
		return
	}
	data, err := json.Marshal(event)
	if err != nil {
		h.s.log.Warn("fastpath: encoding an event", slog.String("error", err.Error()))
		return
	}
	select {
	case h.events <- remoteEvent{stream: stream, data: data}:
	default:
		h.s.log.Warn("fastpath: event for a stream on another node dropped: too many waiting")
	}
}

// Availability implements fastpath.Hooks. A registry that does not answer
// counts as away, not gone: a Redis hiccup must not end tickets.
func (h *FastpathHooks) Availability(stream string) fastpath.Availability {
	if st, ok := h.local(stream); ok {
		if st.Offerable() {
			return fastpath.Available
		}
		return fastpath.Away
	}
	p, ok := h.presence(stream)
	switch {
	case !ok:
		return fastpath.Away
	case !p.found:
		return fastpath.Gone
	case p.state.Presence.Offerable():
		return fastpath.Available
	}
	return fastpath.Away
}

// InRoom implements fastpath.Hooks.
func (h *FastpathHooks) InRoom(stream, room string) bool {
	if st, ok := h.local(stream); ok {
		return st.InRoom(room)
	}
	p, ok := h.presence(stream)
	if !ok || !p.found {
		return false
	}
	for _, seat := range p.state.Rooms {
		if seat.Room == room {
			return true
		}
	}
	return false
}

// presence is the registry's view of a remote stream, cached briefly;
// false when the registry did not answer.
func (h *FastpathHooks) presence(stream string) (cachedPresence, bool) {
	if p, ok := h.presences.Get(stream); ok && time.Now().Before(p.until) {
		return p, true
	}
	if h.s.cfg.StreamPresence == nil {
		return cachedPresence{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, found, err := h.s.cfg.StreamPresence(ctx, stream)
	if err != nil {
		return cachedPresence{}, false
	}
	p := cachedPresence{state: st, found: found, until: time.Now().Add(presenceTTL)}
	h.presences.Add(stream, p)
	return p, true
}

// deliver hands queued events to their streams' nodes, in order.
func (h *FastpathHooks) deliver() {
	defer close(h.done)
	for {
		select {
		case <-h.ctx.Done():
			return
		case ev := <-h.events:
			h.send(ev)
		}
	}
}

func (h *FastpathHooks) send(ev remoteEvent) {
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second) // Close does not wait for a slow node
	defer cancel()
	if h.s.fwd == nil {
		return
	}
	addr, err := h.s.ownerAddr(ctx, ev.stream)
	if err != nil || addr == "" {
		return // the stream is gone (or lost): nobody to tell
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/internal/v1/streams/"+url.PathEscape(ev.stream)+"/fastpath-event", bytes.NewReader(ev.data))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(clusterSecretHeader, string(h.s.cfg.ClusterSecret))
	res, err := h.s.fwd.client.Do(req)
	if err != nil {
		h.s.log.Warn("fastpath: delivering an event to another node", slog.String("error", err.Error()))
		return
	}
	_ = res.Body.Close()
	if res.StatusCode == http.StatusNotFound {
		h.s.fwd.owners.Remove(ev.stream) // moved: the next event looks it up again
	}
}

// serveFastpathEvent is the internal route where the leader's hooks hand
// over an event for a stream this node holds.
func (s *Server) serveFastpathEvent(w http.ResponseWriter, r *http.Request) error {
	st, err := s.streams.Stream(chi.URLParam(r, "streamid"))
	if err != nil {
		return errStreamNotFound
	}
	fs, ok := st.(fastpathStream)
	if !ok {
		return errStreamNotFound
	}
	var raw json.RawMessage
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.cfg.MaxRequestBytes)).Decode(&raw); err != nil {
		return errInvalidJSON.wrap("%v", err)
	}
	fs.PublishEvent(raw)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
