package sse

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// connSubscriber is an SSE client whose HTTP/1 connection Serve took over
// (hijacked). Whoever publishes an event writes it to the socket with one
// non-blocking write, instead of waking a goroutine per client to do it. An
// idle subscriber so costs no goroutine, no net/http buffers and no queue,
// and a fan-out to thousands of clients is a loop of syscalls rather than
// thousands of goroutine wake-ups. A client whose socket buffer is full gets
// one drainer goroutine, with blocking writes under the write timeout, until
// its backlog is written; frames queued meanwhile count against the queue
// size, and a client that falls a whole queue behind is evicted.
type connSubscriber struct {
	b     *Broker
	t     *topic
	topic string // for diagnostics

	mu        sync.Mutex
	conn      net.Conn        // nil until the hijack succeeded
	raw       syscall.RawConn // nil when the connection has no file descriptor (TLS)
	pending   [][]byte        // frames not yet written (pending[0] may be the rest of a frame)
	draining  bool            // one goroutine owns writing (Serve's, then a drainer); flush leaves it alone
	ending    bool            // close once pending is written (CloseTopic)
	closed    bool
	lastWrite time.Time
	heartbeat *time.Timer
	stopCtx   func() bool // unregisters the ServeOptions.Context callback
	onClose   func()
}

// errPeerClosed is why a subscriber whose client hung up is dropped.
var errPeerClosed = errors.New("sse: client closed the connection")

// errWouldBlock is returned by tryWrite when the socket buffer is full, or
// when the connection offers no non-blocking write at all.
var errWouldBlock = errors.New("sse: write would block")

// serveConn is Serve on a connection it can take over. It returns once the
// response head and replay are written; the subscription then lives on
// without a goroutine until the client, the topic, opts.Context or an
// eviction ends it.
func (b *Broker) serveConn(w http.ResponseWriter, r *http.Request, t *topic, name string, opts ServeOptions) error {
	// Until it hands writing over, this goroutine is a drainer: Drain (at
	// shutdown) must wait for the head and replay too.
	b.drainers.Add(1)
	handedOver := false
	defer func() {
		if !handedOver {
			b.drainers.Add(-1)
		}
	}()
	// draining: while this goroutine writes the head and replay, Publish
	// only queues, so live events follow the replay in order.
	s := &connSubscriber{b: b, t: t, topic: name, draining: true}
	replay, err := t.subscribe(s, lastEventID(r, opts), b.maxSubs)
	if err != nil {
		opts.closed()
		return err
	}
	if !b.track(s) { // the broker closed meanwhile
		s.close(nil)
		opts.closed()
		return ErrTopicNotFound
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.close(nil)
		opts.closed()
		return err
	}
	// The Hijack contract leaves deadlines to the new owner; a stale read
	// deadline would make every liveness probe fail.
	_ = conn.SetDeadline(time.Time{})
	s.mu.Lock()
	s.conn, s.raw = conn, rawConnOf(conn)
	if s.closed { // evicted or the broker closed while we were hijacking
		s.mu.Unlock()
		_ = conn.Close()
		opts.closed()
		return nil
	}
	s.onClose = opts.OnClose
	s.lastWrite = time.Now()
	s.heartbeat = time.AfterFunc(b.heartbeat, s.beat)
	if opts.Context != nil {
		s.stopCtx = context.AfterFunc(opts.Context, func() { s.close(nil) })
	}
	s.mu.Unlock()

	// Raw HTTP/1.1 response head, with the headers middleware set: the
	// handler no longer owns the connection, so net/http will not write one.
	// Without Content-Length or Transfer-Encoding the body is delimited by
	// the close (RFC 9112 §6.3).
	h := w.Header().Clone()
	setEventStreamHeaders(h)
	h.Set("Connection", "close")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	_ = h.Write(&head)
	head.WriteString("\r\n")
	bufs := append(net.Buffers{head.Bytes(), preamble(b.retry)}, replay...)
	_ = conn.SetWriteDeadline(time.Now().Add(b.writeTimeout))
	if _, err := bufs.WriteTo(conn); err != nil {
		s.close(err)
		return nil
	}
	handedOver = true
	s.drain() // whatever was published meanwhile; then Publish writes directly
	return nil
}

// offer queues a frame; see subscriber.
func (s *connSubscriber) offer(frame []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return true // on its way out: close unsubscribes it
	}
	if len(s.pending) >= s.b.queueSize {
		return false
	}
	s.pending = append(s.pending, frame)
	return true
}

// evict drops the connection at once; the client resumes with Last-Event-ID.
func (s *connSubscriber) evict() { s.close(nil) }

// end writes what is queued, then closes the connection.
func (s *connSubscriber) end() {
	s.mu.Lock()
	s.ending = true
	s.mu.Unlock()
	s.flush()
}

// flush writes the queued frames without blocking. Whatever the socket does
// not take is left to a drainer goroutine, started here.
func (s *connSubscriber) flush() {
	s.mu.Lock()
	if s.closed || s.draining {
		s.mu.Unlock()
		return
	}
	err := s.writePendingLocked()
	switch {
	case err != nil:
		s.mu.Unlock()
		s.close(err)
	case len(s.pending) > 0:
		s.draining = true
		s.b.drainers.Add(1)
		s.mu.Unlock()
		go s.drain() // owned by s; ends when the backlog is written or the write fails
	case s.ending:
		s.mu.Unlock()
		s.close(nil)
	default:
		s.mu.Unlock()
	}
}

// writePendingLocked writes the queued frames with one non-blocking write
// (writev(2) when there are several: the client then reads them together
// too), keeping what the socket did not take. s.mu must be held.
func (s *connSubscriber) writePendingLocked() error {
	if len(s.pending) == 0 {
		return nil
	}
	var n int
	var err error
	if len(s.pending) == 1 {
		n, err = tryWrite(s.raw, s.pending[0])
	} else {
		n, err = tryWritev(s.raw, s.pending)
	}
	if n > 0 {
		s.lastWrite = time.Now()
		s.consumeLocked(n)
	}
	if errors.Is(err, errWouldBlock) {
		return nil
	}
	return err
}

// consumeLocked drops the first n written bytes from the queue. It keeps
// the backing array: most events find the queue empty.
func (s *connSubscriber) consumeLocked(n int) {
	i := 0
	for i < len(s.pending) && n >= len(s.pending[i]) {
		n -= len(s.pending[i])
		i++
	}
	if i < len(s.pending) {
		s.pending[i] = s.pending[i][n:]
	}
	k := copy(s.pending, s.pending[i:])
	clear(s.pending[k:])
	s.pending = s.pending[:k]
}

// drain writes the backlog with blocking writes (each bounded by the write
// timeout) until it is empty, then hands writing back to Publish. The
// caller has set draining and counted it in b.drainers.
func (s *connSubscriber) drain() {
	defer s.b.drainers.Add(-1)
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		if len(s.pending) == 0 {
			// A past deadline would fail every later non-blocking write.
			err := s.conn.SetWriteDeadline(time.Time{})
			s.draining = false
			ending := s.ending
			s.mu.Unlock()
			if err != nil || ending {
				s.close(err)
			}
			return
		}
		bufs := make(net.Buffers, len(s.pending))
		copy(bufs, s.pending)
		clear(s.pending)
		s.pending = s.pending[:0]
		s.mu.Unlock()

		_ = s.conn.SetWriteDeadline(time.Now().Add(s.b.writeTimeout))
		if _, err := bufs.WriteTo(s.conn); err != nil { // writev on TCP
			s.close(err)
			return
		}
		s.mu.Lock()
		s.lastWrite = time.Now()
		s.mu.Unlock()
	}
}

// beat runs on the heartbeat timer: after a silent interval it sends a
// comment (keeping proxies from timing the stream out) and checks that the
// client is still there, since no goroutine reads the connection.
func (s *connSubscriber) beat() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if s.draining || len(s.pending) > 0 { // a write is under way or imminent
		s.heartbeat.Reset(s.b.heartbeat)
		s.mu.Unlock()
		return
	}
	if idle := time.Since(s.lastWrite); idle < s.b.heartbeat {
		s.heartbeat.Reset(s.b.heartbeat - idle)
		s.mu.Unlock()
		return
	}
	if readGone(s.raw) {
		s.mu.Unlock()
		s.close(errPeerClosed)
		return
	}
	s.pending = append(s.pending, heartbeatComment)
	s.heartbeat.Reset(s.b.heartbeat)
	s.mu.Unlock()
	s.flush()
}

// gone reports, without blocking, whether the client has hung up. It is
// called under the topic lock when the subscriber cap is reached, so that a
// reloaded page is not refused because of its own dead connection.
func (s *connSubscriber) gone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed || readGone(s.raw)
}

// close ends the subscription once: the socket is closed, the subscriber
// unsubscribed and OnClose run. The caller holds no broker lock.
func (s *connSubscriber) close(err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	conn, raw, heartbeat, stopCtx, onClose := s.conn, s.raw, s.heartbeat, s.stopCtx, s.onClose
	s.pending = nil
	s.mu.Unlock()
	if heartbeat != nil {
		heartbeat.Stop()
	}
	if stopCtx != nil {
		stopCtx()
	}
	if conn != nil {
		// Unread input (a client that sent a body, say) would make the
		// kernel answer the close with a reset, dropping the last events.
		readGone(raw)
		_ = conn.Close()
	}
	s.t.unsubscribe(s)
	s.b.untrack(s)
	if err != nil {
		s.b.log.Debug("sse: connection ended", "topic", s.topic, "err", err)
	}
	if onClose != nil {
		onClose()
	}
}

// preamble opens every stream. WHATWG SSE: "retry:" sets the client's
// reconnection time in ms. The comment makes the response body non-empty at
// once, so clients and proxies see the stream open even when there is
// nothing to replay.
func preamble(retry time.Duration) []byte {
	p := strconv.AppendInt([]byte("retry: "), retry.Milliseconds(), 10)
	return append(append(p, '\n'), okComment...)
}

// canHijack reports whether w, or a ResponseWriter it wraps, can hand over
// its connection (HTTP/1 can; HTTP/2 and test recorders cannot).
func canHijack(w http.ResponseWriter) bool {
	for {
		if _, ok := w.(http.Hijacker); ok {
			return true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return false
		}
		w = u.Unwrap()
	}
}

// rawConnOf returns the connection's file descriptor access, or nil (TLS
// connections have none; their writes always go through a drainer).
func rawConnOf(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}
