package sse

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
)

// ServeOptions carries per-connection limits that the caller derives from its
// own domain (for example credential expiry or revocation).
type ServeOptions struct {
	// Context, when non-nil, ends the subscription once it is done (for
	// example at credential expiry or revocation). It is not the request's
	// context: a subscription on a taken-over connection outlives Serve.
	Context context.Context
	// LastEventID, when non-empty, overrides the id read from the request.
	LastEventID string
	// OnClose, when non-nil, runs exactly once when the subscription ends,
	// including when Serve returns an error; never with a broker lock held.
	// It may run on any goroutine (a publisher's, the topic writer's, a timer's, another
	// request's), so it must not block or need a lock held around Publish.
	OnClose func()
}

func (o ServeOptions) closed() {
	if o.OnClose != nil {
		o.OnClose()
	}
}

// Serve subscribes one HTTP client to a topic. It returns ErrTopicNotFound
// (before writing anything) for an unknown topic and ErrTooManySubscribers
// when the cap is hit, so the caller can write a JSON error; otherwise nil.
//
// On HTTP/1 Serve takes the connection over and returns as soon as the
// response head and replay are written: the subscription lives on, written
// to by Publish, until the client goes away, the topic or broker closes,
// opts.Context is done or the subscriber is evicted as too slow; then
// opts.OnClose runs. Where the connection cannot be taken over (HTTP/2),
// Serve streams from a queue in the caller's goroutine until the same ends.
func (b *Broker) Serve(w http.ResponseWriter, r *http.Request, name string, opts ServeOptions) error {
	t := b.topic(name)
	if t == nil {
		opts.closed()
		return ErrTopicNotFound
	}
	if r.ProtoMajor == 1 && canHijack(w) {
		return b.serveConn(w, r, t, name, opts)
	}
	defer opts.closed()
	return b.serveQueued(w, r, t, name, opts)
}

// setEventStreamHeaders sets the response headers of an event stream.
func setEventStreamHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-store")
	h.Set("X-Accel-Buffering", "no") // nginx would otherwise buffer the stream
}

// serveQueued streams a topic from a queue in the caller's goroutine, through
// the ResponseWriter's own buffering and flushing.
func (b *Broker) serveQueued(w http.ResponseWriter, r *http.Request, t *topic, name string, opts ServeOptions) error {
	s := newQueueSubscriber(b.queueSize)
	replay, err := t.subscribe(s, lastEventID(r, opts), b.maxSubs)
	if err != nil {
		return err
	}
	defer t.unsubscribe(s)

	setEventStreamHeaders(w.Header())
	w.WriteHeader(http.StatusOK)

	rc := http.NewResponseController(w)
	heartbeat := time.NewTimer(b.heartbeat)
	defer heartbeat.Stop()
	write := func(frames ...[]byte) bool {
		var err error
		for _, f := range frames { // a deadline per frame keeps a large replay from timing out as one batch
			if err = supported(rc.SetWriteDeadline(time.Now().Add(b.writeTimeout))); err == nil {
				_, err = w.Write(f)
			}
			if err != nil {
				break
			}
		}
		if err == nil {
			err = supported(rc.Flush())
		}
		if err != nil {
			b.log.Debug("sse: write failed", "topic", name, "err", err)
			return false
		}
		heartbeat.Reset(b.heartbeat) // Go 1.23+ timers: Reset needs no drain
		return true
	}

	if !write(append([][]byte{preamble(b.retry)}, replay...)...) {
		return nil
	}

	var stop <-chan struct{}
	if opts.Context != nil {
		stop = opts.Context.Done()
	}
	batch := make([][]byte, 0, 16)
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-b.done:
			// CloseTopic may have queued final events just before: send them.
			for batch = batch[:0]; len(s.queue) > 0; {
				if f, ok := <-s.queue; ok {
					batch = append(batch, f)
				}
			}
			if len(batch) > 0 {
				write(batch...)
			}
			return nil
		case <-stop:
			return nil
		case <-s.evicted:
			return nil
		case <-heartbeat.C:
			if !write(heartbeatComment) {
				return nil
			}
		case f, ok := <-s.queue:
			if !ok {
				return nil // CloseTopic: everything queued has been written
			}
			select {
			case <-s.evicted: // too slow: send nothing more, the client resumes via Last-Event-ID
				return nil
			default:
			}
			// Write everything already queued under a single flush. Only this
			// goroutine receives, so len > 0 guarantees a value.
			batch = append(batch[:0], f)
			for len(s.queue) > 0 {
				batch = append(batch, <-s.queue)
			}
			if !write(batch...) {
				return nil
			}
		}
	}
}

// lastEventID picks the resume point: the explicit option, else the
// Last-Event-ID header a browser's EventSource sends when it reconnects
// (WHATWG SSE "reestablish the connection"), else the last_event_id query
// parameter, because EventSource cannot set headers on its first connect.
func lastEventID(r *http.Request, opts ServeOptions) string {
	if opts.LastEventID != "" {
		return strings.TrimSpace(opts.LastEventID)
	}
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		return strings.TrimSpace(v)
	}
	return strings.TrimSpace(r.URL.Query().Get("last_event_id"))
}

// supported treats http.ErrNotSupported as success: a ResponseWriter without
// deadlines or flushing (e.g. in tests) can still carry the stream.
func supported(err error) error {
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}
