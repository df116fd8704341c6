package sse

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
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
	closed := make(chan struct{})
	srv := newServer(t, b, func(*http.Request) ServeOptions {
		return ServeOptions{OnClose: func() { close(closed) }}
	})
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
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		drained <- b.Drain(ctx)
	}()

	s := &sseStream{rd: rd}
	_, err := s.next() // preamble
	require.NoError(t, err)
	require.Len(t, s.ids(t, n), n)
	s.requireEOF(t)
	require.NoError(t, <-drained)
}

func TestHijackedCloseEndsAtOnce(t *testing.T) {
	t.Parallel()
	b := NewBroker()
	b.Open("s")
	closed := make(chan struct{})
	srv := newServer(t, b, func(*http.Request) ServeOptions {
		return ServeOptions{OnClose: func() { close(closed) }}
	})
	_, rd := rawClient(t, srv, "s")
	readHead(t, rd)
	require.Eventually(t, func() bool { return b.Subscribers("s") == 1 }, 5*time.Second, time.Millisecond)
	b.Close()
	<-closed
	s := &sseStream{rd: rd}
	s.requireEOF(t)
}
