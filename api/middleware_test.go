package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"
)

// TestServer_RequestIDCarriesNoHostName: the id in X-Request-Id and in an
// error body is random (chi's middleware.RequestID begins it with the host
// name); every request gets its own; a sane client id is kept, a wild one
// replaced.
func TestServer_RequestIDCarriesNoHostName(t *testing.T) {
	t.Parallel()
	host, err := os.Hostname()
	require.NoError(t, err)
	h := NewServer(Config{JWTSecret: testSecret}, nil, nil, nil).Routes()
	get := func(hdr string) (string, ErrorResponse) {
		req := httptest.NewRequest(http.MethodGet, "/no/such/route", nil)
		if hdr != "" {
			req.Header.Set("X-Request-Id", hdr)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, http.StatusNotFound, rec.Code)
		var er ErrorResponse
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &er))
		return rec.Header().Get("X-Request-Id"), er
	}
	random := regexp.MustCompile(`^[0-9a-f]{32}$`)
	seen := map[string]bool{}
	for range 3 {
		id, er := get("")
		require.Regexp(t, random, id)
		require.NotContains(t, id, host)
		require.NotContains(t, id, "/")
		require.Equal(t, id, er.RequestID)
		require.False(t, seen[id], "request id %s repeated", id)
		seen[id] = true
	}
	id, er := get("trace-42.abc")
	require.Equal(t, "trace-42.abc", id)
	require.Equal(t, id, er.RequestID)
	for _, wild := range []string{strings.Repeat("x", 129), "a b", "bad\x7f"} {
		id, er := get(wild)
		require.Regexp(t, random, id)
		require.Equal(t, id, er.RequestID)
	}
}

// BenchmarkLogRequests measures the request log middleware around a send
// route; "bare" is the same router without it.
func BenchmarkLogRequests(b *testing.B) {
	s := NewServer(Config{JWTSecret: []byte("0123456789abcdef0123456789abcdef")}, nil, nil,
		slog.New(slog.NewJSONHandler(io.Discard, nil)))
	handler := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"abc"}`))
	}
	for _, bm := range []struct {
		name string
		mw   []func(http.Handler) http.Handler
	}{
		{"bare", []func(http.Handler) http.Handler{requestID}},
		{"logged", []func(http.Handler) http.Handler{requestID, s.logRequests}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			r := chi.NewRouter()
			r.Use(bm.mw...)
			r.Route("/restapi/v1/chat/{stream}", func(r chi.Router) {
				r.Post("/messages/{to}", handler)
			})
			req := httptest.NewRequest(http.MethodPost, "/restapi/v1/chat/s1/messages/bob@localhost", nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				r.ServeHTTP(w, req)
				if w.Code != http.StatusCreated {
					b.Fatal(w.Code)
				}
			}
		})
	}
}
