package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"time"

	"github.com/go-chi/chi/v5"
)

// Headers of a request one node forwards to the stream's owner over the
// internal listener. The user's own Authorization travels unchanged (every
// node checks it with the same JWT secret); the cluster secret proves the
// request comes from a node, and the client address is the one the first
// node saw (the rate limits count it, not the forwarding node's).
const (
	clusterSecretHeader = "X-Xmppgw-Cluster-Secret"
	clusterClientHeader = "X-Xmppgw-Client-Ip"
)

// Forwarder finds the node that owns a stream (cluster mode).
type Forwarder interface {
	// OwnerAddr returns the owner's internal address ("" when the stream
	// is not registered or its owner is dead) and the owner's node id.
	OwnerAddr(ctx context.Context, streamID string) (addr, owner string, err error)
}

// forwardedKey marks a request that came over the internal listener: it is
// never forwarded again, and its client address is the first node's.
type forwardedKey struct{}

func forwardedClient(r *http.Request) (string, bool) {
	ip, ok := r.Context().Value(forwardedKey{}).(string)
	return ip, ok
}

// ClusterRoutes is the handler of the internal listener
// (XMPPGW_CLUSTER_LISTEN) the cluster's nodes call each other on
// (docs/cluster.md). Every request must carry the shared cluster secret in
// X-Xmppgw-Cluster-Secret; behind it are a ping and the public API for
// requests forwarded to this node because it owns their stream.
func (s *Server) ClusterRoutes(secret []byte) http.Handler {
	want := sha256.Sum256(secret)
	public := s.Routes()
	r := chi.NewRouter()
	r.Use(requestID, s.recoverPanics)
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got := sha256.Sum256([]byte(r.Header.Get(clusterSecretHeader))) // equal lengths for the constant-time compare
			if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
				s.handle(func(http.ResponseWriter, *http.Request) error { return errUnauthorized })(w, r)
				return
			}
			client := r.Header.Get(clusterClientHeader)
			if _, err := netip.ParseAddr(client); err != nil {
				client = ""
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), forwardedKey{}, client)))
		})
	})
	// ping lets a node (and the tests) check a peer's listener and secret.
	r.Get("/internal/v1/ping", s.handle(func(w http.ResponseWriter, _ *http.Request) error {
		return writeOK(w, http.StatusOK, HealthResponse{Status: "ok"})
	}))
	r.Handle("/restapi/*", public)
	r.NotFound(s.handle(func(http.ResponseWriter, *http.Request) error { return errNotFound }))
	return r
}

// forward hands the request to the node owning streamID, when this node
// does not have it and the cluster says who does; it reports whether it
// did. The owner answers exactly as it would have locally (same status,
// same error JSON); event streams and WebSockets are proxied for as long
// as they last.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, streamID string) bool {
	if s.cfg.Forward == nil || streamID == "" {
		return false
	}
	if _, ok := forwardedClient(r); ok {
		return false // already forwarded once: never loop
	}
	if _, err := s.streams.Stream(streamID); err == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	addr, _, err := s.cfg.Forward.OwnerAddr(ctx, streamID)
	cancel()
	if err != nil {
		s.handle(func(http.ResponseWriter, *http.Request) error { return errClusterNotReady.wrap("%v", err) })(w, r)
		return true
	}
	if addr == "" {
		return false // unknown everywhere: the local 404 is the answer
	}
	client := s.clientIP(r)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", addr
			pr.Out.Host = addr
			pr.Out.Header.Set(clusterSecretHeader, string(s.cfg.ClusterSecret))
			pr.Out.Header.Set(clusterClientHeader, client)
		},
		FlushInterval: -1, // event streams: every write goes out at once
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.Warn("forwarding to the stream's node", "error", err.Error())
			s.handle(func(http.ResponseWriter, *http.Request) error {
				return errClusterNotReady.wrap("the node holding this stream did not answer")
			})(w, r)
		},
	}
	// The owner paces long responses (SSE heartbeats); this node's server
	// write timeout must not cut them.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	s.metrics.forwarded.Inc()
	proxy.ServeHTTP(w, r)
	return true
}
