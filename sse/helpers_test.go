package sse

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sseEvent is one dispatched block of an event stream as a WHATWG parser
// would see it, plus the comments it carried.
type sseEvent struct {
	ID, Data, Retry string
	HasID, HasData  bool
	Comments        []string
}

type sseStream struct {
	resp *http.Response
	rd   *bufio.Reader
}

// next parses the next block (up to a blank line). It returns io.EOF once the
// server ends the response.
func (s *sseStream) next() (sseEvent, error) {
	var ev sseEvent
	var data []string
	for {
		line, err := s.rd.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			ev.Data = strings.Join(data, "\n")
			return ev, nil
		}
		if strings.HasPrefix(line, ":") {
			ev.Comments = append(ev.Comments, strings.TrimPrefix(line[1:], " "))
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.ID, ev.HasID = value, true
		case "data":
			data, ev.HasData = append(data, value), true
		case "retry":
			ev.Retry = value
		}
	}
}

// event returns the next block that carries data, skipping heartbeats.
func (s *sseStream) event(t *testing.T) sseEvent {
	t.Helper()
	for {
		ev, err := s.next()
		require.NoError(t, err)
		if ev.HasData {
			return ev
		}
	}
}

// ids reads n events and returns their ids.
func (s *sseStream) ids(t *testing.T, n int) []string {
	t.Helper()
	out := make([]string, 0, n)
	for range n {
		out = append(out, s.event(t).ID)
	}
	return out
}

// requireEOF asserts that the server ends the stream, skipping any heartbeat.
func (s *sseStream) requireEOF(t *testing.T) {
	t.Helper()
	for {
		ev, err := s.next()
		if err != nil {
			require.ErrorIs(t, err, io.EOF)
			return
		}
		require.False(t, ev.HasData, "unexpected event %q before EOF", ev.ID)
	}
}

// newServer serves b at GET /events/{topic}, mapping Serve errors to JSON
// errors the way the gateway does. The broker is closed before the server.
func newServer(t *testing.T, b *Broker, opts func(*http.Request) ServeOptions) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /events/{topic}", func(w http.ResponseWriter, r *http.Request) {
		var o ServeOptions
		if opts != nil {
			o = opts(r)
		}
		err := b.Serve(w, r, r.PathValue("topic"), o)
		code := http.StatusInternalServerError
		switch {
		case err == nil:
			return
		case errors.Is(err, ErrTopicNotFound):
			code = http.StatusNotFound
		case errors.Is(err, ErrTooManySubscribers):
			code = http.StatusTooManyRequests
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(b.Close)
	return srv
}

// get issues the request; header and query set Last-Event-ID when non-empty.
func get(t *testing.T, srv *httptest.Server, topic, header, query string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	u := srv.URL + "/events/" + url.PathEscape(topic)
	if query != "" {
		u += "?last_event_id=" + url.QueryEscape(query)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	require.NoError(t, err)
	if header != "" {
		req.Header.Set("Last-Event-ID", header)
	}
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close(); cancel() })
	return resp
}

// connect subscribes and consumes the preamble, after which the subscriber is
// registered (Serve registers before writing anything).
func connect(t *testing.T, srv *httptest.Server, topic, header, query string) *sseStream {
	t.Helper()
	resp := get(t, srv, topic, header, query)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	s := &sseStream{resp: resp, rd: bufioReader(resp)}
	pre, err := s.next()
	require.NoError(t, err)
	require.Equal(t, []string{"ok"}, pre.Comments)
	require.False(t, pre.HasData)
	return s
}

// memWriter is an in-memory http.ResponseWriter and http.Flusher.
type memWriter struct {
	mu     sync.Mutex
	header http.Header
	buf    strings.Builder
	code   int
	// block, when non-nil, makes Write wait until it is closed.
	block chan struct{}
}

func (w *memWriter) Header() http.Header {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.header == nil {
		w.header = http.Header{}
	}
	return w.header
}

func (w *memWriter) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.code = code
}

func (w *memWriter) Write(p []byte) (int, error) {
	if w.block != nil {
		<-w.block
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *memWriter) Flush() {}

func (w *memWriter) status() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.code
}

func (w *memWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// lockedBuffer is a goroutine-safe log sink.
type lockedBuffer struct {
	mu sync.Mutex
	sb strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sb.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sb.String()
}

func bufioReader(resp *http.Response) *bufio.Reader { return bufio.NewReader(resp.Body) }
