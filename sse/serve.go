package sse

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ServeOptions carries per-connection limits that the caller derives from its
// own domain (for example credential expiry or revocation).
type ServeOptions struct {
	// Deadline, when non-zero, ends Serve once it passes.
	Deadline time.Time
	// Done, when non-nil, ends Serve once closed.
	Done <-chan struct{}
	// LastEventID, when non-empty, overrides the id read from the request.
	LastEventID string
}

// Serve streams a topic to one HTTP client until the client goes away, the
// topic or broker closes, opts.Deadline/Done fire, or the subscriber is
// evicted as too slow. It returns ErrTopicNotFound (before writing anything)
// for an unknown topic and ErrTooManySubscribers when the cap is hit, so the
// caller can write a JSON error; otherwise nil once streaming has started and
// ended. Serve runs entirely in the caller's goroutine.
func (b *Broker) Serve(w http.ResponseWriter, r *http.Request, name string, opts ServeOptions) error {
	t := b.topic(name)
	if t == nil {
		return ErrTopicNotFound
	}
	s := &subscriber{queue: make(chan []byte, b.queueSize), evicted: make(chan struct{})}
	replay, err := t.subscribe(s, lastEventID(r, opts), b.maxSubs)
	if err != nil {
		return err
	}
	defer t.unsubscribe(s)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-store")
	h.Set("X-Accel-Buffering", "no") // nginx would otherwise buffer the stream
	if r.ProtoMajor == 1 {
		h.Set("Connection", "keep-alive") // connection-specific headers are forbidden in HTTP/2+
	}
	w.WriteHeader(http.StatusOK)

	rc := http.NewResponseController(w)
	heartbeat := time.NewTimer(b.heartbeat)
	defer heartbeat.Stop()
	healthy := true
	defer func() {
		// A stale deadline would break the next request on a reused
		// keep-alive connection; a failed connection is left bounded.
		if healthy {
			_ = rc.SetWriteDeadline(time.Time{})
		}
	}()
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
			healthy = false
			b.log.Debug("sse: write failed", "topic", name, "err", err)
			return false
		}
		heartbeat.Reset(b.heartbeat) // Go 1.23+ timers: Reset needs no drain
		return true
	}

	// WHATWG SSE: "retry:" sets the client's reconnection time in ms. The
	// comment makes the response body non-empty at once, so clients and
	// proxies see the stream open even when there is nothing to replay.
	preamble := strconv.AppendInt([]byte("retry: "), b.retry.Milliseconds(), 10)
	preamble = append(append(preamble, '\n'), okComment...)
	if !write(append([][]byte{preamble}, replay...)...) {
		return nil
	}

	var deadline <-chan time.Time
	if !opts.Deadline.IsZero() {
		dt := time.NewTimer(time.Until(opts.Deadline))
		defer dt.Stop()
		deadline = dt.C
	}
	batch := make([][]byte, 0, 16)
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-b.done:
			return nil
		case <-opts.Done:
			return nil
		case <-deadline:
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
