package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// requestID puts a request id in the context (where middleware.GetReqID
// finds it; logRequests echoes it as X-Request-Id). It replaces chi's
// middleware.RequestID, whose ids begin with the host name: an id is in
// every error body, and the host name is nothing a client should learn.
// A sane X-Request-Id from the client (a proxy's trace id) is kept, as
// chi did; anything else gets a fresh random id.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(middleware.RequestIDHeader)
		if !validRequestID(id) {
			id = newRequestID()
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), middleware.RequestIDKey, id)))
	})
}

// maxRequestIDLen bounds a client's request id: it is copied into logs,
// headers and error bodies.
const maxRequestIDLen = 128

// validRequestID accepts 1-128 visible ASCII characters.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := range len(id) {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// newRequestID is 16 random bytes, hex.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics instead)
	return hex.EncodeToString(b[:])
}

// logRequests logs one line per request. It logs the route pattern, never
// the raw path or query: paths carry stream ids and queries may carry
// tokens, both of which are credentials.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		if id := middleware.GetReqID(r.Context()); id != "" {
			ww.Header().Set("X-Request-Id", id)
		}
		start := time.Now()
		defer func() {
			route := chi.RouteContext(r.Context()).RoutePattern()
			if route == "" {
				route = "unmatched"
			}
			status := ww.Status()
			if status == 0 { // nothing written (net/http then sends 200), or an event stream that took its connection over
				status = http.StatusOK
			}
			took := time.Since(start)
			s.metrics.observe(route, r.Method, status, took.Seconds())
			s.log.LogAttrs(r.Context(), slog.LevelInfo, "http request",
				slog.String("method", r.Method), slog.String("route", route),
				slog.Int("status", status), slog.Int("bytes", ww.BytesWritten()),
				slog.Duration("duration", took),
				slog.String("request_id", middleware.GetReqID(r.Context())))
		}()
		next.ServeHTTP(ww, r)
	})
}

// recoverPanics turns a handler panic into a logged stack and a JSON 500, so
// no panic (or its text) reaches a client.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v) // the server's own signal to abort the response
			}
			s.log.Error("panic in handler", slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
			s.writeError(w, r, fmt.Errorf("panic: %v", v))
		}()
		next.ServeHTTP(w, r)
	})
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		// The API serves data, never pages: nothing may load or frame it.
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		next.ServeHTTP(w, r)
	})
}
