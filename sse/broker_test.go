package sse

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func publishN(t *testing.T, b *Broker, topic string, n int) {
	t.Helper()
	for range n {
		require.NotZero(t, b.Publish(topic, []byte(`{"n":1}`)))
	}
}

func TestPublishAssignsIDsPerTopic(t *testing.T) {
	t.Parallel()
	b := NewBroker()
	defer b.Close()
	require.Zero(t, b.Publish("a", []byte(`{}`)), "unknown topic drops")
	b.Open("a")
	b.Open("b")
	require.EqualValues(t, 1, b.Publish("a", []byte(`{}`)))
	require.EqualValues(t, 2, b.Publish("a", []byte(`{}`)))
	require.EqualValues(t, 1, b.Publish("b", []byte(`{}`)))
	b.Open("a") // idempotent: keeps ids and buffer
	require.EqualValues(t, 2, b.LastID("a"))
	require.EqualValues(t, 3, b.Publish("a", []byte(`{}`)))
	require.Zero(t, b.LastID("missing"))
	require.Zero(t, b.Subscribers("missing"))
}

func TestFanOutToAllSubscribers(t *testing.T) {
	t.Parallel()
	b := NewBroker()
	b.Open("s")
	srv := newServer(t, b, nil)
	s1 := connect(t, srv, "s", "", "")
	s2 := connect(t, srv, "s", "", "")
	require.Equal(t, 2, b.Subscribers("s"))
	for i := 1; i <= 3; i++ {
		require.EqualValues(t, i, b.Publish("s", fmt.Appendf(nil, `{"i":%d}`, i)))
	}
	for _, s := range []*sseStream{s1, s2} {
		for i := 1; i <= 3; i++ {
			ev := s.event(t)
			require.Equal(t, strconv.Itoa(i), ev.ID)
			require.Equal(t, fmt.Sprintf(`{"i":%d}`, i), ev.Data)
		}
	}
}

func TestHeadersAndPreamble(t *testing.T) {
	t.Parallel()
	b := NewBroker(WithRetry(1500 * time.Millisecond))
	b.Open("s")
	srv := newServer(t, b, nil)
	resp := get(t, srv, "s", "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	require.Equal(t, "no-cache, no-store", resp.Header.Get("Cache-Control"))
	require.Equal(t, "no", resp.Header.Get("X-Accel-Buffering"))
	s := &sseStream{resp: resp, rd: bufioReader(resp)}
	pre, err := s.next()
	require.NoError(t, err)
	require.Equal(t, "1500", pre.Retry)
	require.Equal(t, []string{"ok"}, pre.Comments)
	require.False(t, pre.HasData)
}

func TestResume(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		header, query string
		opt           string
		want          []string // ids after the preamble, then a live event 6 must follow
	}{
		{"no id replays all retained", "", "", "", []string{"1", "2", "3", "4", "5"}},
		{"header", "3", "", "", []string{"4", "5"}},
		{"query", "", "4", "", []string{"5"}},
		{"header wins over query", "2", "4", "", []string{"3", "4", "5"}},
		{"option wins over header", "2", "", "4", []string{"5"}},
		{"up to date", "5", "", "", nil},
		{"zero", "0", "", "", []string{"1", "2", "3", "4", "5"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := NewBroker()
			b.Open("s")
			publishN(t, b, "s", 5)
			srv := newServer(t, b, func(*http.Request) ServeOptions { return ServeOptions{LastEventID: tc.opt} })
			s := connect(t, srv, "s", tc.header, tc.query)
			require.EqualValues(t, 6, b.Publish("s", []byte(`{}`)))
			require.Equal(t, append(tc.want, "6"), s.ids(t, len(tc.want)+1), "replay, then live, no reset")
		})
	}
}

func TestResetWhenResumeImpossible(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, lastID string
	}{
		{"evicted", "1"},
		{"future", "99"},
		{"unparsable", "abc"},
		{"negative", "-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := NewBroker(WithReplaySize(3))
			b.Open("s")
			publishN(t, b, "s", 5) // retains 3, 4, 5
			srv := newServer(t, b, nil)
			s := connect(t, srv, "s", tc.lastID, "")
			reset := s.event(t)
			require.Equal(t, "2", reset.ID, "reset sits just before the oldest retained event")
			want, err := json.Marshal(map[string]any{"type": "reset", "last_event_id": tc.lastID, "oldest_id": 3, "reason": "events missed"})
			require.NoError(t, err)
			require.JSONEq(t, string(want), reset.Data)
			require.Equal(t, []string{"3", "4", "5"}, s.ids(t, 3))
		})
	}

	t.Run("boundary just before oldest is not a reset", func(t *testing.T) {
		t.Parallel()
		b := NewBroker(WithReplaySize(3))
		b.Open("s")
		publishN(t, b, "s", 5)
		srv := newServer(t, b, nil)
		s := connect(t, srv, "s", "2", "")
		require.Equal(t, []string{"3", "4", "5"}, s.ids(t, 3))
	})

	t.Run("empty buffer uses last id", func(t *testing.T) {
		t.Parallel()
		b := NewBroker(WithReplayBytes(4))
		b.Open("s")
		require.EqualValues(t, 1, b.Publish("s", []byte(`{"big":1}`))) // larger than the cap: not retained
		srv := newServer(t, b, nil)
		s := connect(t, srv, "s", "7", "")
		reset := s.event(t)
		require.Equal(t, "1", reset.ID)
		require.JSONEq(t, `{"type":"reset","last_event_id":"7","oldest_id":0,"reason":"events missed"}`, reset.Data)
	})
}

func TestReplayBounds(t *testing.T) {
	t.Parallel()
	t.Run("bytes", func(t *testing.T) {
		t.Parallel()
		b := NewBroker(WithReplayBytes(10))
		defer b.Close()
		b.Open("s")
		for range 4 {
			b.Publish("s", []byte(`"ab"`)) // 4 bytes each: only the newest two fit in 10
		}
		s := newQueueSubscriber(1)
		frames, err := b.topic("s").subscribe(s, "", 0)
		require.NoError(t, err)
		require.Equal(t, []string{string(Frame(3, []byte(`"ab"`))), string(Frame(4, []byte(`"ab"`)))}, toStrings(frames))
	})
	t.Run("count over HTTP", func(t *testing.T) {
		t.Parallel()
		b := NewBroker(WithReplaySize(2))
		b.Open("s")
		publishN(t, b, "s", 5)
		srv := newServer(t, b, nil)
		s := connect(t, srv, "s", "", "")
		require.Equal(t, []string{"4", "5"}, s.ids(t, 2))
	})
}

func toStrings(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}

func TestCloseTopicDeliversQueuedThenEnds(t *testing.T) {
	t.Parallel()
	b := NewBroker()
	b.Open("s")
	srv := newServer(t, b, nil)
	s1 := connect(t, srv, "s", "", "")
	s2 := connect(t, srv, "s", "", "")
	publishN(t, b, "s", 3)
	b.CloseTopic("s")
	b.CloseTopic("s") // idempotent
	for _, s := range []*sseStream{s1, s2} {
		require.Equal(t, []string{"1", "2", "3"}, s.ids(t, 3))
		s.requireEOF(t)
	}
	require.Zero(t, b.Publish("s", []byte(`{}`)))
	require.Zero(t, b.Subscribers("s"))
	require.Equal(t, http.StatusNotFound, get(t, srv, "s", "", "").StatusCode)

	// Reopening starts a fresh topic with fresh ids.
	b.Open("s")
	require.EqualValues(t, 1, b.Publish("s", []byte(`{}`)))
}

func TestBrokerCloseEndsStreams(t *testing.T) {
	t.Parallel()
	b := NewBroker()
	b.Open("a")
	b.Open("b")
	srv := newServer(t, b, nil)
	sa := connect(t, srv, "a", "", "")
	sb := connect(t, srv, "b", "", "")
	b.Close()
	b.Close() // idempotent
	sa.requireEOF(t)
	sb.requireEOF(t)
	require.Zero(t, b.Publish("a", []byte(`{}`)))
	b.Open("c")
	require.Zero(t, b.Publish("c", []byte(`{}`)), "Open after Close is a no-op")
	require.Equal(t, http.StatusNotFound, get(t, srv, "a", "", "").StatusCode)
}

func TestContextEndsServe(t *testing.T) {
	t.Parallel()
	t.Run("deadline", func(t *testing.T) {
		t.Parallel()
		b := NewBroker()
		b.Open("s")
		srv := newServer(t, b, func(*http.Request) ServeOptions {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			return ServeOptions{Context: ctx, OnClose: cancel}
		})
		s := connect(t, srv, "s", "", "")
		s.requireEOF(t)
		require.Eventually(t, func() bool { return b.Subscribers("s") == 0 }, 5*time.Second, 5*time.Millisecond)
	})
	t.Run("done", func(t *testing.T) {
		t.Parallel()
		b := NewBroker()
		b.Open("s")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		closed := make(chan struct{})
		srv := newServer(t, b, func(*http.Request) ServeOptions {
			return ServeOptions{Context: ctx, OnClose: func() { close(closed) }}
		})
		s := connect(t, srv, "s", "", "")
		b.Publish("s", []byte(`{}`))
		require.Equal(t, "1", s.event(t).ID, "stream is live until the context ends")
		cancel()
		s.requireEOF(t)
		<-closed // OnClose runs exactly once (a second close would panic)
		require.Zero(t, b.Subscribers("s"))
	})
}

func TestSlowSubscriberEvicted(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	b := NewBroker(WithQueueSize(2), WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	b.Open("s")
	srv := newServer(t, b, nil)
	fast := connect(t, srv, "s", "", "")

	// The slow subscriber's writer blocks forever: it never reads.
	slow := &memWriter{block: make(chan struct{})}
	slowDone := make(chan error, 1)
	go func() { slowDone <- b.Serve(slow, httptest.NewRequest(http.MethodGet, "/", nil), "s", ServeOptions{}) }()
	require.Eventually(t, func() bool { return b.Subscribers("s") == 2 }, 5*time.Second, time.Millisecond)

	// Publish returns even though the slow writer is stuck; the fast
	// subscriber, read between publishes, gets every event.
	const secret = `{"secret":"payload-marker"}`
	for i := 1; i <= 10; i++ {
		require.EqualValues(t, i, publishWithin(t, b, "s", []byte(secret)))
		ev := fast.event(t)
		require.Equal(t, strconv.Itoa(i), ev.ID)
		require.Equal(t, secret, ev.Data)
		if i == 3 { // queue of 2 overflowed on the 3rd publish
			require.Equal(t, 1, b.Subscribers("s"))
		}
	}
	require.Contains(t, logs.String(), "topic=s")
	require.NotContains(t, logs.String(), "payload-marker", "payloads are never logged")

	close(slow.block)
	select {
	case err := <-slowDone:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("evicted Serve did not return")
	}
	require.NotContains(t, slow.String(), "id: ", "an evicted subscriber is sent nothing more")
}

// publishWithin fails the test if Publish blocks.
func publishWithin(t *testing.T, b *Broker, topic string, data []byte) uint64 {
	t.Helper()
	id := make(chan uint64, 1)
	go func() { id <- b.Publish(topic, data) }()
	select {
	case v := <-id:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked")
		return 0
	}
}

func TestCloseTopicDrainsStalledSubscriber(t *testing.T) {
	t.Parallel()
	b := NewBroker(WithQueueSize(8))
	defer b.Close()
	b.Open("s")
	w := &memWriter{block: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- b.Serve(w, httptest.NewRequest(http.MethodGet, "/", nil), "s", ServeOptions{}) }()
	require.Eventually(t, func() bool { return b.Subscribers("s") == 1 }, 5*time.Second, time.Millisecond)
	publishN(t, b, "s", 3) // queued while Serve is stuck writing the preamble
	b.CloseTopic("s")
	close(w.block)
	require.NoError(t, <-done)
	require.True(t, strings.HasSuffix(w.String(), "id: 1\ndata: {\"n\":1}\n\nid: 2\ndata: {\"n\":1}\n\nid: 3\ndata: {\"n\":1}\n\n"), w.String())
}

func TestServeErrors(t *testing.T) {
	t.Parallel()
	t.Run("topic not found writes nothing", func(t *testing.T) {
		t.Parallel()
		b := NewBroker()
		defer b.Close()
		rec := httptest.NewRecorder()
		err := b.Serve(rec, httptest.NewRequest(http.MethodGet, "/", nil), "nope", ServeOptions{})
		require.ErrorIs(t, err, ErrTopicNotFound)
		require.Zero(t, rec.Body.Len())
		require.Empty(t, rec.Header().Get("Content-Type"))
		require.False(t, rec.Flushed)
	})
	t.Run("too many subscribers", func(t *testing.T) {
		t.Parallel()
		b := NewBroker(WithMaxSubscribers(1))
		b.Open("s")
		srv := newServer(t, b, nil)
		first := connect(t, srv, "s", "", "")
		resp := get(t, srv, "s", "", "")
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.JSONEq(t, `{"error":"sse: too many subscribers"}`, string(body))
		require.Equal(t, 1, b.Subscribers("s"))

		// Once the first leaves, its slot frees up: nothing reads its
		// connection, but a subscriber arriving at the cap makes the broker
		// probe for clients that hung up (the FIN may take a moment).
		require.NoError(t, first.resp.Body.Close())
		require.Eventually(t, func() bool {
			resp := get(t, srv, "s", "", "")
			defer resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}, 5*time.Second, 10*time.Millisecond)
		require.Equal(t, 1, b.Subscribers("s"))
	})
}

func TestPayloadsArriveByteIdentical(t *testing.T) {
	t.Parallel()
	big := `{"blob":"` + strings.Repeat("x", 64<<10) + `"}`
	payloads := []string{
		big,
		`{"q":"he said \"hi\"","nl":"line1\nline2\r\n","tab":"\t"}`,
		`{"html":"<script>alert(1)</script>","amp":"a&b"}`,
		`{"emoji":"😀👍🏽","cjk":"漢字","rtl":"עברית"}`,
		`{"esc":"\u2028\u2029\\"}`,
	}
	b := NewBroker()
	b.Open("s")
	srv := newServer(t, b, nil)
	s := connect(t, srv, "s", "", "")
	for _, p := range payloads {
		b.Publish("s", []byte(p))
	}
	for i, p := range payloads {
		ev := s.event(t)
		require.Equal(t, strconv.Itoa(i+1), ev.ID)
		require.Equal(t, p, ev.Data)
	}
}

func TestReplayAndLiveHaveNoGapOrDuplicate(t *testing.T) {
	t.Parallel()
	const publishers, perPublisher = 4, 250
	const total = publishers * perPublisher
	b := NewBroker(WithQueueSize(2*total), WithReplaySize(2*total))
	b.Open("s")
	srv := newServer(t, b, nil)
	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for range perPublisher {
				b.Publish("s", []byte(`{}`))
			}
		})
	}
	// Subscribers join while publishing is under way, each with a different
	// split between replayed and live events.
	streams := make([]*sseStream, 3)
	for i := range streams {
		streams[i] = connect(t, srv, "s", "", "")
	}
	wg.Wait()
	require.EqualValues(t, total, b.LastID("s"))
	want := make([]string, total)
	for i := range want {
		want[i] = strconv.Itoa(i + 1)
	}
	for _, s := range streams {
		require.Equal(t, want, s.ids(t, total))
	}
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := NewBroker(WithHeartbeat(5 * time.Second))
		defer b.Close()
		b.Open("s")
		ctx, cancel := context.WithCancel(context.Background())
		w := &memWriter{}
		done := make(chan error, 1)
		go func() {
			done <- b.Serve(w, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx), "s", ServeOptions{})
		}()
		beats := func() int {
			synctest.Wait()
			return strings.Count(w.String(), ": heartbeat\n\n")
		}
		require.Zero(t, beats())
		require.Equal(t, http.StatusOK, w.status())
		require.Equal(t, "text/event-stream", w.Header().Get("Content-Type"))

		time.Sleep(4900 * time.Millisecond)
		require.Zero(t, beats())
		time.Sleep(200 * time.Millisecond)
		require.Equal(t, 1, beats())

		// A write postpones the next heartbeat by a full interval.
		time.Sleep(3 * time.Second)
		b.Publish("s", []byte(`{}`))
		time.Sleep(4900 * time.Millisecond)
		require.Equal(t, 1, beats())
		time.Sleep(200 * time.Millisecond)
		require.Equal(t, 2, beats())
		require.Contains(t, w.String(), "id: 1\ndata: {}\n\n")

		cancel()
		require.NoError(t, <-done)
	})
}
