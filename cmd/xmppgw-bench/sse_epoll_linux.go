package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// defaultFanoutReader is the fan-out subscriber implementation used unless
// -fanout-reader says otherwise.
const defaultFanoutReader = "epoll"

// haveEpoll says whether -fanout-reader epoll is available.
const haveEpoll = true

const (
	// epollReadBuf is the read buffer of each epoll loop. One read per
	// readiness: a fan-out event is a few hundred bytes per subscriber.
	epollReadBuf = 64 << 10
	// epollMaxLine bounds a partial line kept across reads, so a stream
	// without newlines cannot grow a buffer without bound.
	epollMaxLine = 1 << 20
	// epollSetupTimeout bounds a subscription's setup (connect, request,
	// response head, preamble), so a stalled gateway cannot hang the bench.
	epollSetupTimeout = 10 * time.Second
	// epollBatch is how long a loop that just found sockets ready pauses
	// before it looks again. A fan-out writes thousands of sockets over
	// tens of milliseconds; a loop that reads each as soon as it is written
	// sleeps in epoll_wait between them, so nearly every gateway write
	// wakes a thread: on the 2-core box the bench spent ~7–9 µs per event
	// that way, ~4.5 µs with the pause, and the gateway's writes got
	// cheaper too. Pausing lets ready sockets pile up to be read in
	// batches; the pause (≤ 0.5 ms plus timer slack) is part of the
	// measured time to last. The first socket of an idle loop is read at
	// once, so the time to first is not delayed.
	epollBatch = 500 * time.Microsecond
)

// epollReader reads the event streams of many SSE subscribers with a few
// goroutines: each subscriber is a raw socket (not a net.Conn, which Go's
// own netpoller would also watch and wake a goroutine for), registered with
// one of a few level-triggered epoll instances, each served by one
// goroutine. A published event so costs a few epoll_waits per loop (see
// epollBatch) and one read per subscriber, instead of a goroutine wake-up,
// scheduling and two reads per subscriber with net/http. Every subscriber
// still has its own TCP connection and every line it receives is parsed.
//
// The loops exit when the context given to newEpollReader is done or close
// is called; close also waits for them and closes every descriptor.
type epollReader struct {
	family int            // AF_INET or AF_INET6
	addr   netip.AddrPort // the gateway; see sockaddr
	host   string         // Host header
	base   string         // URL path prefix of the gateway ("" at the root)
	loops  []*epollLoop
	next   atomic.Uint32 // round-robin over loops
	wg     sync.WaitGroup

	// stop is an eventfd registered in every loop, written once to stop
	// them all. stopOnce also makes close wait for a write the context
	// callback is making, so the fd is never written after it is closed.
	stop      int
	stopOnce  sync.Once
	stopCtx   func() bool // unregisters the context callback
	closeOnce sync.Once
}

// epollLoop is one epoll instance and the goroutine serving it.
type epollLoop struct {
	epfd int
	buf  []byte // read buffer, used by the loop goroutine only

	mu     sync.Mutex
	conns  map[int32]*epollConn // by fd
	closed bool                 // the loop has exited; no more registrations

	dropped atomic.Int64 // streams the gateway ended before close
	err     error        // first drop's cause; written under mu
}

// epollConn is one subscriber's stream. After registration only its loop
// goroutine touches it.
type epollConn struct {
	fd      int
	partial []byte // an incomplete line carried over to the next read
	onChat  func(body string, at time.Time)
}

// newEpollReader prepares loops epoll instances (at least one) for
// subscribers of the gateway at base (http://127.0.0.1:port) and starts
// their goroutines; bufSize is the read buffer of each loop.
func newEpollReader(ctx context.Context, base string, loops, bufSize int) (*epollReader, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" {
		return nil, fmt.Errorf("epoll reader: gateway URL %q: not http://ip:port", base)
	}
	ap, err := netip.ParseAddrPort(u.Host)
	if err != nil {
		return nil, fmt.Errorf("epoll reader: gateway address %q must be ip:port: %w", u.Host, err)
	}
	r := &epollReader{host: u.Host, base: strings.TrimSuffix(u.Path, "/"), stop: -1,
		addr: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}
	r.family = unix.AF_INET6
	if r.addr.Addr().Is4() {
		r.family = unix.AF_INET
	}
	if r.stop, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("epoll reader: eventfd: %w", err)
	}
	for range max(loops, 1) {
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err == nil {
			// Level-triggered and never read: once written, the eventfd
			// stays readable and wakes every loop, now and later.
			err = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, r.stop, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(r.stop)})
			if err != nil {
				unix.Close(epfd)
			}
		}
		if err != nil {
			r.close()
			return nil, fmt.Errorf("epoll reader: epoll: %w", err)
		}
		r.loops = append(r.loops, &epollLoop{epfd: epfd, buf: make([]byte, max(bufSize, 1)), conns: map[int32]*epollConn{}})
	}
	for _, l := range r.loops {
		r.wg.Go(func() { l.run(r.stop) })
	}
	r.stopCtx = context.AfterFunc(ctx, r.signalStop)
	return r, nil
}

// signalStop wakes every loop for good.
func (r *epollReader) signalStop() {
	r.stopOnce.Do(func() {
		var one [8]byte
		one[0] = 1 // an eventfd counter is a host-endian uint64; any non-zero value makes it readable
		_, _ = unix.Write(r.stop, one[:])
	})
}

// close stops the loops, waits for them and closes every descriptor. It
// reports streams the gateway ended before (which miss events). Idempotent.
func (r *epollReader) close() error {
	var errs []error
	r.closeOnce.Do(func() {
		if r.stopCtx != nil {
			r.stopCtx()
		}
		if r.stop >= 0 {
			r.signalStop()
		}
		r.wg.Wait() // each loop closes its sockets on the way out
		for _, l := range r.loops {
			if n := l.dropped.Load(); n > 0 {
				errs = append(errs, fmt.Errorf("epoll reader: the gateway ended %d streams early: %w", n, l.err))
			}
			unix.Close(l.epfd)
		}
		if r.stop >= 0 {
			unix.Close(r.stop)
		}
	})
	return errors.Join(errs...)
}

// subscribe opens one stream's SSE connection like gwClient.subscribe (same
// URL, returns once the preamble arrived) and hands it to a loop, which
// calls onChat with the body of every chat event and the time it was read.
// The socket is non-blocking from the start; the setup waits on it with
// poll(2) under a deadline rather than blocking in read(2), which a
// signal could interrupt (SO_RCVTIMEO reads are not restarted).
func (r *epollReader) subscribe(ctx context.Context, s gwStream, onChat func(body string, at time.Time)) error {
	deadline := time.Now().Add(epollSetupTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	fd, err := unix.Socket(r.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("events: socket: %w", err)
	}
	registered := false
	defer func() {
		if !registered {
			unix.Close(fd)
		}
	}()
	if err := connectFD(ctx, fd, r.sockaddr(), deadline); err != nil {
		return fmt.Errorf("events: connect %s: %w", r.host, err)
	}
	// The same request net/http sends for gwClient.subscribe, minus
	// Accept-Encoding (that client disables compression).
	req := "GET " + r.base + "/restapi/v1/chat/" + s.ID + "/events?token=" + url.QueryEscape(s.Token) + " HTTP/1.1\r\n" +
		"Host: " + r.host + "\r\nUser-Agent: xmppgw-bench\r\nAccept: text/event-stream\r\n\r\n"
	if err := writeFD(ctx, fd, []byte(req), deadline); err != nil {
		return fmt.Errorf("events: request: %w", err)
	}
	rest, err := readHead(ctx, fd, deadline)
	if err != nil {
		return err
	}
	c := &epollConn{fd: fd, onChat: onChat}
	// Whatever followed the preamble in the same reads (the stream's
	// retained events are replayed right after it) is parsed now.
	if err := c.feed(rest); err != nil {
		return fmt.Errorf("events: %w", err)
	}
	l := r.loops[int(r.next.Add(1))%len(r.loops)]
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("events: epoll reader closed")
	}
	// Registered under mu: the loop resolves ready fds under mu, so it
	// cannot see this fd before it is in the map.
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
		return fmt.Errorf("events: epoll_ctl: %w", err)
	}
	l.conns[int32(fd)] = c
	registered = true
	return nil
}

// readHead reads and checks the response head and the "retry:" preamble
// line, and returns the bytes read after them. The epoll loops parse a
// close-delimited body only: a chunked (or length-delimited) response would
// be parsed wrongly, so it fails here.
func readHead(ctx context.Context, fd int, deadline time.Time) ([]byte, error) {
	buf := make([]byte, 0, 4096)
	end := -1
	for end < 0 {
		if len(buf) >= 64<<10 {
			return nil, fmt.Errorf("events: response head larger than %d bytes", len(buf))
		}
		var err error
		if buf, err = readFD(ctx, fd, buf, deadline); err != nil {
			return nil, fmt.Errorf("events: response head: %w", err)
		}
		end = bytes.Index(buf, []byte("\r\n\r\n"))
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(buf[:end+4])), nil)
	if err != nil {
		return nil, fmt.Errorf("events: response head: %w", err)
	}
	rest := buf[end+4:]
	switch {
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("events: %d %s", resp.StatusCode, bytes.TrimSpace(rest[:min(len(rest), 300)]))
	case len(resp.TransferEncoding) > 0:
		return nil, fmt.Errorf("events: response is %s-encoded; the epoll reader parses close-delimited streams only (use -fanout-reader http)", strings.Join(resp.TransferEncoding, ","))
	case resp.ContentLength >= 0:
		return nil, fmt.Errorf("events: response has Content-Length %d, not a close-delimited event stream", resp.ContentLength)
	case !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"):
		return nil, fmt.Errorf("events: Content-Type %q, not text/event-stream", resp.Header.Get("Content-Type"))
	}
	for bytes.IndexByte(rest, '\n') < 0 {
		if len(rest) >= 4096 {
			return nil, fmt.Errorf("events: bad preamble %q", rest[:64])
		}
		n := len(buf) - len(rest)
		if buf, err = readFD(ctx, fd, buf, deadline); err != nil {
			return nil, fmt.Errorf("events: preamble: %w", err)
		}
		rest = buf[n:]
	}
	line, rest, _ := bytes.Cut(rest, []byte("\n"))
	if !bytes.HasPrefix(line, []byte("retry:")) {
		return nil, fmt.Errorf("events: bad preamble %q", line)
	}
	return rest, nil
}

// sockaddr is a new Sockaddr of the gateway for each connect: unix.Connect
// writes its raw form into the value it is given, so one shared value is a
// data race between concurrent subscribers.
func (r *epollReader) sockaddr() unix.Sockaddr {
	if a := r.addr.Addr(); a.Is4() {
		return &unix.SockaddrInet4{Port: int(r.addr.Port()), Addr: a.As4()}
	}
	return &unix.SockaddrInet6{Port: int(r.addr.Port()), Addr: r.addr.Addr().As16()}
}

// connectFD connects a non-blocking socket, waiting until deadline.
func connectFD(ctx context.Context, fd int, sa unix.Sockaddr, deadline time.Time) error {
	err := unix.Connect(fd, sa)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINPROGRESS) && !errors.Is(err, unix.EINTR) {
		return err
	}
	if err := waitFD(ctx, fd, unix.POLLOUT, deadline); err != nil {
		return err
	}
	soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return err
	}
	if soErr != 0 {
		return unix.Errno(soErr)
	}
	return nil
}

// writeFD writes all of p to a non-blocking socket, waiting until deadline.
func writeFD(ctx context.Context, fd int, p []byte, deadline time.Time) error {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		switch {
		case errors.Is(err, unix.EAGAIN):
			if err := waitFD(ctx, fd, unix.POLLOUT, deadline); err != nil {
				return err
			}
		case errors.Is(err, unix.EINTR):
		case err != nil:
			return err
		default:
			p = p[n:]
		}
	}
	return nil
}

// readFD appends one read from a non-blocking socket to buf, waiting until
// deadline for data.
func readFD(ctx context.Context, fd int, buf []byte, deadline time.Time) ([]byte, error) {
	if len(buf) == cap(buf) {
		buf = append(buf, make([]byte, cap(buf))...)[:len(buf)]
	}
	for {
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		switch {
		case errors.Is(err, unix.EAGAIN):
			if err := waitFD(ctx, fd, unix.POLLIN, deadline); err != nil {
				return buf, err
			}
		case errors.Is(err, unix.EINTR):
		case err != nil:
			return buf, err
		case n == 0:
			return buf, io.ErrUnexpectedEOF
		default:
			return buf[:len(buf)+n], nil
		}
	}
}

// waitFD waits with poll(2) until fd is ready for events (or has an error
// the next syscall reports), ctx is done or deadline passes.
func waitFD(ctx context.Context, fd int, events int16, deadline time.Time) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ms := time.Until(deadline).Milliseconds()
		if ms <= 0 {
			return os.ErrDeadlineExceeded
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
		n, err := unix.Poll(pfd, int(min(ms, 100))) // slices of 100 ms, to notice ctx
		switch {
		case errors.Is(err, unix.EINTR): // poll(2) with a timeout is never restarted
		case err != nil:
			return err
		case n > 0:
			return nil
		}
	}
}

// run serves the loop until the stop eventfd becomes readable or epoll
// fails, then closes the loop's sockets.
func (l *epollLoop) run(stop int) {
	defer l.shutdown()
	events := make([]unix.EpollEvent, 1024)
	ready := make([]*epollConn, 0, len(events))
	idle := true
	for {
		timeout := 0
		if idle {
			timeout = -1
		}
		n, err := unix.EpollWait(l.epfd, events, timeout)
		if errors.Is(err, unix.EINTR) {
			continue // epoll_wait is never restarted after a signal (signal(7))
		}
		if err != nil {
			l.mu.Lock()
			lost := len(l.conns)
			l.mu.Unlock()
			l.fail(fmt.Errorf("epoll_wait: %w", err), lost)
			return
		}
		// One lock per wake-up, not per fd: resolve the batch first.
		ready = ready[:0]
		l.mu.Lock()
		for _, ev := range events[:n] {
			if int(ev.Fd) == stop {
				l.mu.Unlock()
				return
			}
			if c := l.conns[ev.Fd]; c != nil {
				ready = append(ready, c)
			}
		}
		l.mu.Unlock()
		for _, c := range ready {
			if err := l.read(c); err != nil {
				l.drop(c, err)
			}
		}
		// Block in epoll_wait only once nothing was ready; a full batch
		// means more is waiting, so look again at once.
		if idle = n == 0; !idle && n < len(events) {
			time.Sleep(epollBatch)
		}
	}
}

// read makes one read from a ready socket and parses what it got.
// Level-triggered epoll reports the socket again while data remains.
func (l *epollLoop) read(c *epollConn) error {
	n, err := unix.Read(c.fd, l.buf)
	switch {
	case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
		return nil
	case err != nil:
		return err
	case n == 0:
		return io.EOF
	}
	return c.feed(l.buf[:n])
}

// drop closes a stream the gateway ended (or that failed) before close.
func (l *epollLoop) drop(c *epollConn, err error) {
	unix.Close(c.fd) // also removes it from the epoll set
	l.mu.Lock()
	delete(l.conns, int32(c.fd))
	l.mu.Unlock()
	l.fail(err, 1)
}

// fail counts n streams lost to err, keeping the first cause.
func (l *epollLoop) fail(err error, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = err
	}
	l.dropped.Add(int64(n))
}

// shutdown closes every socket of the loop and refuses new ones.
func (l *epollLoop) shutdown() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for fd := range l.conns {
		unix.Close(int(fd))
	}
	clear(l.conns)
}

// errLineTooLong ends a stream that sends more than epollMaxLine bytes
// without a newline.
var errLineTooLong = fmt.Errorf("line longer than %d bytes", epollMaxLine)

// feed splits p into lines, joining the first with the partial line left by
// the previous read and keeping an incomplete last one for the next. Only
// LF ends a line, as for gwClient.subscribe: the gateway writes LF only.
func (c *epollConn) feed(p []byte) error {
	if len(c.partial) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(c.partial)+len(p) > epollMaxLine {
				return errLineTooLong
			}
			c.partial = append(c.partial, p...)
			return nil
		}
		c.partial = append(c.partial, p[:i+1]...)
		c.line(c.partial)
		c.partial = c.partial[:0]
		if cap(c.partial) > 4<<10 {
			c.partial = nil // do not pin a large buffer per subscriber
		}
		p = p[i+1:]
	}
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			break
		}
		c.line(p[:i+1])
		p = p[i+1:]
	}
	if len(p) > epollMaxLine {
		return errLineTooLong
	}
	c.partial = append(c.partial, p...)
	return nil
}

// line handles one complete line (with its LF): only chat data lines matter.
func (c *epollConn) line(l []byte) {
	if body, ok := chatBody(l); ok {
		c.onChat(body, time.Now())
	}
}
