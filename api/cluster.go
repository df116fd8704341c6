package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
)

// ClusterRoutes is the handler of the internal listener
// (XMPPGW_CLUSTER_LISTEN) the cluster's nodes call each other on
// (docs/cluster.md). Every request must carry the shared cluster secret
// as a bearer token; nothing here is reachable with a user's or an admin's
// credentials, and none of it is part of the public API document.
func (s *Server) ClusterRoutes(secret []byte) http.Handler {
	want := sha256.Sum256(secret)
	r := chi.NewRouter()
	r.Use(requestID, s.recoverPanics)
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			got := sha256.Sum256([]byte(token)) // equal lengths for the constant-time compare
			if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
				s.handle(func(http.ResponseWriter, *http.Request) error { return errUnauthorized })(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	r.NotFound(s.handle(func(http.ResponseWriter, *http.Request) error { return errNotFound }))
	r.MethodNotAllowed(s.handle(func(http.ResponseWriter, *http.Request) error { return errMethodNotAllowed }))
	// ping lets a node (and the tests) check a peer's listener and secret.
	r.Get("/internal/v1/ping", s.handle(func(w http.ResponseWriter, _ *http.Request) error {
		return writeOK(w, http.StatusOK, HealthResponse{Status: "ok"})
	}))
	return r
}
