package sse

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// rawClient opens a plain TCP connection and sends the GET itself, so the
// test holds no client goroutine and decides exactly when to read.
func rawClient(t *testing.T, srv *httptest.Server, topic string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	_, err = fmt.Fprintf(c, "GET /events/%s HTTP/1.1\r\nHost: test\r\n\r\n", topic)
	require.NoError(t, err)
	return c, bufio.NewReader(c)
}

// readHead reads the response head (the body stays in rd).
func readHead(t *testing.T, rd *bufio.Reader) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(rd, nil)
	require.NoError(t, err)
	return resp
}

// serverWithOnClose serves b (see newServer); the channel closes when a
// subscription's OnClose runs.
func serverWithOnClose(t *testing.T, b *Broker) (*httptest.Server, chan struct{}) {
	t.Helper()
	closed := make(chan struct{})
	srv := newServer(t, b, func(*http.Request) ServeOptions {
		return ServeOptions{OnClose: func() { close(closed) }}
	})
	return srv, closed
}

// drainAsync runs b.Drain (bounded at 20 s) and delivers its result.
func drainAsync(b *Broker) <-chan error {
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		drained <- b.Drain(ctx)
	}()
	return drained
}

// requireAllThenEOF reads the preamble, n events and then the end of the stream.
func requireAllThenEOF(t *testing.T, rd *bufio.Reader, n int) {
	t.Helper()
	s := &sseStream{rd: rd}
	_, err := s.next() // preamble
	require.NoError(t, err)
	require.Len(t, s.ids(t, n), n)
	s.requireEOF(t)
}

func TestHijackedStreamHasNoGoroutine(t *testing.T) {
	b := NewBroker()
	b.Open("s")
	srv := newServer(t, b, nil)
	const n = 50
	before := runtime.NumGoroutine()
	readers := make([]*bufio.Reader, n)
	for i := range readers {
		_, readers[i] = rawClient(t, srv, "s")
		resp := readHead(t, readers[i])
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
		require.True(t, resp.Close, "Connection: close")
		require.Empty(t, resp.TransferEncoding, "the body is delimited by the close")
		require.EqualValues(t, -1, resp.ContentLength)
	}
	require.Eventually(t, func() bool { return b.Subscribers("s") == n }, 5*time.Second, time.Millisecond)
	// The handlers have returned and net/http has let go of the connections.
	require.Eventually(t, func() bool { return runtime.NumGoroutine()-before < 5 }, 5*time.Second, 10*time.Millisecond,
		"idle subscribers must not hold goroutines (had %d, now %d)", before, runtime.NumGoroutine())

	id := b.Publish("s", []byte(`{"x":1}`))
	for _, rd := range readers {
		s := &sseStream{rd: rd}
		ev := s.event(t)
		require.Equal(t, strconv.FormatUint(id, 10), ev.ID)
		require.Equal(t, `{"x":1}`, ev.Data)
	}
}

func TestHijackedSlowSubscriberEvictedWithoutBlockingPublish(t *testing.T) {
	t.Parallel()
	b := NewBroker(WithQueueSize(4))
	b.Open("s")
	srv := newServer(t, b, nil)
	fast := connect(t, srv, "s", "", "")
	stalled, _ := rawClient(t, srv, "s") // never reads: its socket buffers fill up
	require.Eventually(t, func() bool { return b.Subscribers("s") == 2 }, 5*time.Second, time.Millisecond)

	big := []byte(`{"blob":"` + strings.Repeat("x", 256<<10) + `"}`)
	for i := 1; b.Subscribers("s") == 2; i++ {
		require.Less(t, i, 2000, "the stalled subscriber was never evicted")
		require.EqualValues(t, i, publishWithin(t, b, "s", big))
		ev := fast.event(t)
		require.Equal(t, strconv.Itoa(i), ev.ID)
		require.Len(t, ev.Data, len(big))
	}
	require.EqualValues(t, 1, b.Stats().Evicted)
	// The evicted connection is closed: reading it ends (after the buffered bytes).
	_ = stalled.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, stalled)
	require.NoError(t, err, "EOF, not a timeout")
}

func TestHijackedHeartbeatAndHangUp(t *testing.T) {
	t.Parallel()
	b := NewBroker(WithHeartbeat(50 * time.Millisecond))
	b.Open("s")
	srv, closed := serverWithOnClose(t, b)
	c, rd := rawClient(t, srv, "s")
	readHead(t, rd)
	s := &sseStream{rd: rd}
	pre, err := s.next()
	require.NoError(t, err)
	require.Equal(t, []string{"ok"}, pre.Comments)
	for range 2 {
		ev, err := s.next()
		require.NoError(t, err)
		require.Equal(t, []string{"heartbeat"}, ev.Comments)
	}
	// No goroutine reads the connection: the heartbeat notices the hang-up.
	require.NoError(t, c.Close())
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("hang-up not noticed")
	}
	require.Zero(t, b.Subscribers("s"))
}

func TestHijackedCloseTopicWritesBacklogThenEnds(t *testing.T) {
	t.Parallel()
	b := NewBroker(WithQueueSize(1000))
	b.Open("s")
	srv := newServer(t, b, nil)
	_, rd := rawClient(t, srv, "s")
	readHead(t, rd)
	require.Eventually(t, func() bool { return b.Subscribers("s") == 1 }, 5*time.Second, time.Millisecond)

	// More than the socket buffers hold while the client is not reading, so
	// a drainer goroutine owns the rest when the topic closes.
	payload := []byte(`{"blob":"` + strings.Repeat("y", 64<<10) + `"}`)
	const n = 200
	for range n {
		b.Publish("s", payload)
	}
	b.CloseTopic("s")
	drained := drainAsync(b)

	requireAllThenEOF(t, rd, n)
	require.NoError(t, <-drained)
}

func TestHijackedCloseEndsAtOnce(t *testing.T) {
	t.Parallel()
	b := NewBroker()
	b.Open("s")
	srv, closed := serverWithOnClose(t, b)
	_, rd := rawClient(t, srv, "s")
	readHead(t, rd)
	require.Eventually(t, func() bool { return b.Subscribers("s") == 1 }, 5*time.Second, time.Millisecond)
	b.Close()
	<-closed
	s := &sseStream{rd: rd}
	s.requireEOF(t)
}

func TestHijackedDrainWaitsForTheReplayWrite(t *testing.T) {
	t.Parallel()
	b := NewBroker(WithReplayBytes(64<<20), WithReplaySize(1000))
	b.Open("s")
	srv := newServer(t, b, nil)
	payload := []byte(`{"blob":"` + strings.Repeat("z", 64<<10) + `"}`)
	const n = 300 // ~19 MiB of replay: far more than the socket buffers hold
	for range n {
		b.Publish("s", payload)
	}
	_, rd := rawClient(t, srv, "s") // not reading yet: Serve is stuck writing the replay
	require.Eventually(t, func() bool { return b.Subscribers("s") == 1 }, 5*time.Second, time.Millisecond)
	b.CloseTopic("s")

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, b.Drain(ctx), context.DeadlineExceeded, "Serve's own replay write counts as draining")

	drained := drainAsync(b)
	readHead(t, rd)
	requireAllThenEOF(t, rd, n)
	require.NoError(t, <-drained)
}

func TestHijackedCloseReachesClosedTopics(t *testing.T) {
	t.Parallel()
	b := NewBroker(WithQueueSize(1000))
	b.Open("s")
	srv, closed := serverWithOnClose(t, b)
	_, rd := rawClient(t, srv, "s")
	readHead(t, rd)
	require.Eventually(t, func() bool { return b.Subscribers("s") == 1 }, 5*time.Second, time.Millisecond)
	for range 200 { // a backlog the stalled client will not take
		b.Publish("s", []byte(`{"blob":"`+strings.Repeat("w", 64<<10)+`"}`))
	}
	b.CloseTopic("s") // its drainer is now stuck in a write (10 s timeout)
	start := time.Now()
	b.Close()
	select {
	case <-closed:
		require.Less(t, time.Since(start), 5*time.Second)
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a subscriber of an already closed topic")
	}
}

func TestHijackedOrderAndIntegrityUnderConcurrentPublishers(t *testing.T) {
	t.Parallel()
	const publishers, per = 4, 150
	b := NewBroker(WithQueueSize(publishers*per), WithReplaySize(publishers*per))
	b.Open("s")
	srv := newServer(t, b, nil)
	_, rd := rawClient(t, srv, "s")
	readHead(t, rd)
	require.Eventually(t, func() bool { return b.Subscribers("s") == 1 }, 5*time.Second, time.Millisecond)

	// Each payload names its publisher and sequence number, and its size
	// varies with them, so a torn, misplaced or repeated write shows.
	payloadOf := func(p, seq int) string {
		return fmt.Sprintf(`{"p":%d,"seq":%d,"pad":"%s"}`, p, seq, strings.Repeat("p", (p*31+seq)%7*9000))
	}
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for seq := range per {
				b.Publish("s", []byte(payloadOf(p, seq)))
			}
		})
	}
	s := &sseStream{rd: rd}
	_, err := s.next() // preamble
	require.NoError(t, err)
	next := make([]int, publishers) // next sequence number expected from each publisher
	for i := 1; i <= publishers*per; i++ {
		if i < 50 { // read slowly at first, so writes back up into drainers
			time.Sleep(2 * time.Millisecond)
		}
		ev := s.event(t)
		require.Equal(t, strconv.Itoa(i), ev.ID, "ids arrive in order, none lost or repeated")
		var got struct{ P, Seq int }
		require.NoError(t, json.Unmarshal([]byte(ev.Data), &got))
		require.Equal(t, next[got.P], got.Seq, "publisher %d's events in order", got.P)
		require.Equal(t, payloadOf(got.P, got.Seq), ev.Data)
		next[got.P]++
	}
	wg.Wait()
}

func TestHijackedParallelFanOut(t *testing.T) {
	t.Parallel()
	b := NewBroker()
	b.Open("s")
	srv := newServer(t, b, nil)
	const n = 3 * fanOutChunk // several writer goroutines
	readers := make([]*bufio.Reader, n)
	for i := range readers {
		_, readers[i] = rawClient(t, srv, "s")
		readHead(t, readers[i])
	}
	require.Eventually(t, func() bool { return b.Subscribers("s") == n }, 10*time.Second, time.Millisecond)
	for i := 1; i <= 3; i++ {
		b.Publish("s", fmt.Appendf(nil, `{"i":%d}`, i))
	}
	for _, rd := range readers {
		require.Equal(t, []string{"1", "2", "3"}, (&sseStream{rd: rd}).ids(t, 3))
	}
}

func TestHijackedHeadCarriesMiddlewareHeaders(t *testing.T) {
	t.Parallel()
	b := NewBroker()
	b.Open("s")
	t.Cleanup(b.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req-1")
		w.Header().Set("Content-Security-Policy", "default-src 'none'")
		require.NoError(t, b.Serve(w, r, "s", ServeOptions{}))
	}))
	t.Cleanup(srv.Close)
	_, rd := rawClient(t, srv, "s")
	resp := readHead(t, rd)
	require.Equal(t, "req-1", resp.Header.Get("X-Request-Id"))
	require.Equal(t, "default-src 'none'", resp.Header.Get("Content-Security-Policy"))
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	require.NotEmpty(t, resp.Header.Get("Date"))
}

func TestHijackedTLSConnectionUsesDrainer(t *testing.T) {
	t.Parallel()
	b := NewBroker()
	b.Open("s")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /events/{topic}", func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, b.Serve(w, r, r.PathValue("topic"), ServeOptions{}))
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.StartTLS() // HTTP/1.1 over TLS: hijackable, but no file descriptor to write without blocking
	t.Cleanup(srv.Close)
	t.Cleanup(b.Close)
	s := connect(t, srv, "s", "", "")
	require.Equal(t, 1, s.resp.ProtoMajor)
	for i := 1; i <= 3; i++ {
		b.Publish("s", fmt.Appendf(nil, `{"i":%d}`, i))
	}
	require.Equal(t, []string{"1", "2", "3"}, s.ids(t, 3))
}
