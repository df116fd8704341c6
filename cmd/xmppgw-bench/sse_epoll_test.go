//go:build linux

package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/xmppgw/xmppgw/sse"
)

// newEventsServer serves broker b the way the gateway does, on the URL
// gwClient.subscribe uses: topic = stream id, token "tok". Stream id
// "chunked" answers with a chunked event stream instead.
func newEventsServer(t *testing.T, b *sse.Broker) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /restapi/v1/chat/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("token") != "tok" {
			http.Error(w, `{"error":"invalid token"}`, http.StatusUnauthorized)
			return
		}
		if r.PathValue("id") == "chunked" {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = w.Write([]byte("retry: 3000\n\n"))
			http.NewResponseController(w).Flush() // no length known: net/http chunks
			<-r.Context().Done()
			return
		}
		if err := b.Serve(w, r, r.PathValue("id"), sse.ServeOptions{}); err != nil {
			http.Error(w, `{"error":"`+err.Error()+`"}`, http.StatusNotFound)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(b.Close)
	return srv
}

// chatPayload is a gateway chat event carrying bench body seq; pad makes
// its data line longer than a read buffer.
func chatPayload(seq, pad int) []byte {
	return fmt.Appendf(nil, `{"type":"chat","id":"m%d","from":"f1@localhost/r","to":"f0@localhost","pad":"%s","body":"%s"}`,
		seq, strings.Repeat("x", pad), benchBody(int64(seq), time.Unix(0, int64(seq))))
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// loopsRunning reports whether any epoll loop goroutine is still alive.
func loopsRunning() bool {
	buf := make([]byte, 1<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "(*epollLoop).run")
}

// eventually polls cond every 10 ms for up to 10 s.
func eventually(t *testing.T, cond func() bool, msg string, args ...any) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf(msg, args...)
		}
	}
}

// TestEpollReader runs subscribers against the real sse.Broker over
// net/http (the hijacked, close-delimited framing the gateway serves): each
// must see every chat event in order, also events replayed with the
// preamble, across heartbeats and with lines split over many reads (a 7-byte
// buffer; events longer than the 64 KiB one). After the run's context is
// cancelled every loop goroutine exits; close then leaves no descriptor.
func TestEpollReader(t *testing.T) {
	for _, bufSize := range []int{7, epollReadBuf} {
		t.Run(fmt.Sprint("buf", bufSize), func(t *testing.T) {
			const subs, msgs, replayed = 20, 12, 3
			b := sse.NewBroker(sse.WithHeartbeat(5 * time.Millisecond))
			b.Open("s1")
			srv := newEventsServer(t, b)
			for seq := range replayed {
				b.Publish("s1", chatPayload(seq, 0))
			}
			fds0, g0 := openFDs(t), runtime.NumGoroutine()

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			rd, err := newEpollReader(ctx, srv.URL, 2, bufSize)
			require.NoError(t, err)
			defer rd.close()
			var mu sync.Mutex
			got := make([][]int64, subs)
			for i := range subs {
				err := rd.subscribe(ctx, gwStream{ID: "s1", Token: "tok"}, func(body string, at time.Time) {
					seq, _, ok := parseBenchBody(body)
					if !ok {
						t.Errorf("bad body %q", body) // a loop goroutine: no FailNow
					}
					mu.Lock()
					got[i] = append(got[i], seq)
					mu.Unlock()
				})
				require.NoError(t, err)
			}
			require.Equal(t, subs, b.Subscribers("s1"))
			for seq := replayed; seq < msgs; seq++ {
				pad := 0
				if seq%4 == 0 && bufSize == epollReadBuf {
					// One data line over more than one 64 KiB read (with
					// 7 bytes every line spans reads already).
					pad = 100 << 10
				}
				b.Publish("s1", chatPayload(seq, pad))
				time.Sleep(time.Millisecond) // let heartbeats fall between events
			}
			want := make([]int64, msgs)
			for i := range want {
				want[i] = int64(i)
			}
			eventually(t, func() bool {
				mu.Lock()
				defer mu.Unlock()
				for _, g := range got {
					if len(g) < msgs {
						return false
					}
				}
				return true
			}, "not every subscriber got %d events", msgs)
			mu.Lock()
			for i, g := range got {
				require.Equal(t, want, g, "subscriber %d", i)
			}
			mu.Unlock()

			cancel()
			eventually(t, func() bool { return !loopsRunning() && runtime.NumGoroutine() <= g0 },
				"goroutines left after cancel: %d, before %d", runtime.NumGoroutine(), g0)
			require.NoError(t, rd.close())
			require.NoError(t, rd.close(), "close is idempotent")
			// The broker drops the subscribers once it notices the closed
			// sockets; then every descriptor the test opened is gone.
			eventually(t, func() bool { return b.Subscribers("s1") == 0 && openFDs(t) <= fds0 },
				"descriptors left: %d, before %d (%d subscribers)", openFDs(t), fds0, b.Subscribers("s1"))
		})
	}
}

// TestEpollReaderSetupErrors checks that a response the epoll reader cannot
// parse fails the subscription clearly instead of being misread.
func TestEpollReaderSetupErrors(t *testing.T) {
	b := sse.NewBroker()
	b.Open("s1")
	srv := newEventsServer(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rd, err := newEpollReader(ctx, srv.URL, 1, epollReadBuf)
	require.NoError(t, err)
	defer rd.close()
	for _, tt := range []struct {
		name string
		s    gwStream
		want string
	}{
		{"unknown stream", gwStream{ID: "nope", Token: "tok"}, "events: 404"},
		{"bad token", gwStream{ID: "s1", Token: "bad"}, "events: 401"},
		{"chunked", gwStream{ID: "chunked", Token: "tok"}, "chunked-encoded"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := rd.subscribe(ctx, tt.s, func(string, time.Time) {})
			require.ErrorContains(t, err, tt.want)
		})
	}
	_, err = newEpollReader(ctx, "http://localhost:1", 1, epollReadBuf)
	require.ErrorContains(t, err, "ip:port")
}

// TestEpollConnFeed cuts a stream into two reads at every position, and
// into single bytes, and checks the same chat bodies come out in order.
func TestEpollConnFeed(t *testing.T) {
	stream := "id: 1\ndata: " + string(chatPayload(1, 0)) + "\n\n: heartbeat\n\n" +
		"id: 2\ndata: {\"type\":\"presence\",\"from\":\"a\"}\n\n" +
		"id: 3\ndata: " + string(chatPayload(2, 50)) + "\n\nid: 4\ndata: " + string(chatPayload(3, 0)) + "\n\n"
	want := []string{benchBody(1, time.Unix(0, 1)), benchBody(2, time.Unix(0, 2)), benchBody(3, time.Unix(0, 3))}
	run := func(parts ...string) []string {
		var got []string
		c := &epollConn{onChat: func(body string, _ time.Time) { got = append(got, body) }}
		for _, p := range parts {
			require.NoError(t, c.feed([]byte(p)))
		}
		require.Empty(t, c.partial)
		return got
	}
	for i := range len(stream) + 1 {
		require.Equal(t, want, run(stream[:i], stream[i:]), "split at %d", i)
	}
	require.Equal(t, want, run(strings.Split(stream, "")...), "byte by byte")

	c := &epollConn{onChat: func(string, time.Time) {}}
	require.NoError(t, c.feed([]byte("data: ")))
	require.ErrorIs(t, c.feed(make([]byte, epollMaxLine)), errLineTooLong)
}
