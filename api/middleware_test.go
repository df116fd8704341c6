package api

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

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
		{"bare", []func(http.Handler) http.Handler{middleware.RequestID}},
		{"logged", []func(http.Handler) http.Handler{middleware.RequestID, s.logRequests}},
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
