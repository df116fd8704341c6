package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"time"

	"github.com/go-chi/chi/v5"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/xmppgw/xmppgw/gateway"
)

// Headers of a request one node forwards to the stream's owner over the
// internal listener. The user's own Authorization travels unchanged (every
// node checks it with the same JWT secret); the cluster secret proves the
// request comes from a node, and the client address is the one the first
// node saw (the rate limits count it, not the forwarding node's).
const (
	clusterSecretHeader = "X-Xmppgw-Cluster-Secret"
	clusterClientHeader = "X-Xmppgw-Client-Ip"
	// clusterAbsentHeader marks the owner's answer to a forwarded request
	// for a stream it does not hold (any more): set by writeError on the
	// stream-not-found 404 only, so the 404 is about the stream, not a
	// resource of it, and the forwarding node may try the stream's new
	// owner. Stripped from every proxied answer: never shown to clients.
	clusterAbsentHeader = "X-Xmppgw-Stream-Absent"
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
	r.Post(fastpathPath, s.handle(s.serveFastpathCall))
	r.Post(fastpathEventPath, s.handle(s.serveFastpathEvent))
	r.Handle("/restapi/*", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// A fresh routing context: the public router routes the whole
		// path itself, so logs, metrics and audit name the route as on the
		// public listener ("/restapi/v1/ask", not "/restapi/restapi/v1/ask").
		public.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), chi.RouteCtxKey, (*chi.Context)(nil))))
	}))
	r.NotFound(s.handle(func(http.ResponseWriter, *http.Request) error { return errNotFound }))
	return r
}

// ownerTTL is how long a looked-up owner address is reused: owners change
// only when a stream is taken over or handed on (issue 18), and a lookup
// per forwarded request cost a Redis round trip (16 % of a forwarding
// node's CPU in the bench's cluster profile). A proxied 404 or a node that
// does not answer drops the entry at once.
const ownerTTL = time.Second

// ownerCacheSize bounds the owners kept.
const ownerCacheSize = 16384

// forwarding is what forward keeps between requests: one proxy over one
// pool of keep-alive connections to the other nodes (http.DefaultTransport
// keeps 2 idle connections per host, so a busy forwarder dialled anew for
// most requests), and the owners recently looked up.
type forwarding struct {
	proxy  *httputil.ReverseProxy
	client *http.Client // the same pool, for the node's own calls (fastpath)
	owners *lru.Cache[string, ownerEntry]
}

type ownerEntry struct {
	addr  string
	until time.Time
}

// forwardTarget is where one forwarded request goes, for the shared proxy.
type forwardTarget struct {
	streamID, addr, client string
	// in is the client's request and body its body, read in advance, so
	// that a request that reached a former owner can be sent once more to
	// the new one (retried); body is nil when it was too long to keep.
	in      *http.Request
	body    []byte
	retried bool
}

// ownerMovedError is ModifyResponse's word to ErrorHandler: the owner did
// not hold the stream any more and the cluster names another node.
type ownerMovedError struct{ addr string }

func (e ownerMovedError) Error() string { return "the stream moved to " + e.addr }

type forwardTargetKey struct{}

func (s *Server) newForwarding() *forwarding {
	owners, _ := lru.New[string, ownerEntry](ownerCacheSize) // errors only for a size ≤ 0
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}
	f := &forwarding{owners: owners, client: &http.Client{Transport: transport}}
	f.proxy = &httputil.ReverseProxy{
		Transport: transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			t, _ := pr.In.Context().Value(forwardTargetKey{}).(forwardTarget)
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", t.addr
			pr.Out.Host = t.addr
			pr.Out.Header.Set(clusterSecretHeader, string(s.cfg.ClusterSecret))
			pr.Out.Header.Set(clusterClientHeader, t.client)
		},
		// No FlushInterval: ReverseProxy flushes text/event-stream (and
		// unknown-length) responses after every write by itself, and a
		// WebSocket is a raw tunnel; a REST answer goes out in one write.
		ModifyResponse: func(resp *http.Response) error {
			absent := resp.Header.Get(clusterAbsentHeader) != ""
			resp.Header.Del(clusterAbsentHeader)
			if resp.StatusCode != http.StatusNotFound {
				return nil
			}
			t, _ := resp.Request.Context().Value(forwardTargetKey{}).(forwardTarget)
			f.owners.Remove(t.streamID) // maybe moved: look it up next time
			if !absent || t.retried || (t.in.Body != nil && t.in.Body != http.NoBody && t.body == nil) {
				return nil
			}
			// The 1 s owner cache sent it to a node the stream left (a
			// takeover or drain, issue 18): once more, at the new owner.
			if addr, err := s.ownerAddr(resp.Request.Context(), t.streamID); err == nil && addr != "" && addr != t.addr {
				return ownerMovedError{addr: addr}
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			t, _ := r.Context().Value(forwardTargetKey{}).(forwardTarget)
			if moved, ok := errors.AsType[ownerMovedError](err); ok {
				t.addr, t.retried = moved.addr, true
				in := t.in.WithContext(context.WithValue(t.in.Context(), forwardTargetKey{}, t))
				in.Body = io.NopCloser(bytes.NewReader(t.body))
				f.proxy.ServeHTTP(w, in)
				return
			}
			if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
				return // the client went away; the owner is fine
			}
			f.owners.Remove(t.streamID)
			s.log.Warn("forwarding to the stream's node", "error", err.Error())
			s.handle(func(http.ResponseWriter, *http.Request) error {
				return errClusterNotReady.wrap("the node holding this stream did not answer")
			})(w, r)
		},
	}
	return f
}

// ownerAddr is the internal address of streamID's owner, from the cache
// while it is fresh.
func (s *Server) ownerAddr(ctx context.Context, streamID string) (string, error) {
	if e, ok := s.fwd.owners.Get(streamID); ok && time.Now().Before(e.until) {
		return e.addr, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addr, _, err := s.cfg.Forward.OwnerAddr(ctx, streamID)
	if err != nil {
		return "", err
	}
	if addr != "" {
		s.fwd.owners.Add(streamID, ownerEntry{addr: addr, until: time.Now().Add(ownerTTL)})
	}
	return addr, nil
}

// forward hands the request to the node owning streamID, when this node
// does not have it and the cluster says who does; it reports whether it
// did. The owner answers exactly as it would have locally (same status,
// same error JSON); event streams and WebSockets are proxied for as long
// as they last.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, p *principal, streamID string) bool {
	if streamID == "" {
		return false
	}
	if _, ok := forwardedClient(r); ok {
		return false // already forwarded once: never loop (writeError marks a stream-absent 404)
	}
	if s.fwd == nil {
		return false
	}
	if _, err := s.streams.Stream(streamID); err == nil {
		return false
	}
	addr, err := s.ownerAddr(r.Context(), streamID)
	var lost gateway.StreamLostError
	switch {
	case errors.As(err, &lost) && !p.admin && lost.User != p.user.String():
		return false // someone else's stream: the local 404
	case err != nil:
		s.handle(func(http.ResponseWriter, *http.Request) error {
			if errors.Is(err, gateway.ErrStreamLost) {
				return err // 410: log in again
			}
			return errClusterNotReady.wrap("%v", err)
		})(w, r)
		return true
	}
	if addr == "" {
		return false // unknown everywhere: the local 404 is the answer
	}
	target := forwardTarget{streamID: streamID, addr: addr, client: s.clientIP(r), in: r}
	if r.Body != nil && r.Body != http.NoBody {
		// Kept for a retry up to the size the owner accepts anyway; a
		// longer body is streamed and not retried.
		b, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxRequestBytes+1))
		if err != nil {
			s.handle(func(http.ResponseWriter, *http.Request) error {
				return errBadRequest.wrap("reading the request body: %v", err)
			})(w, r)
			return true
		}
		if int64(len(b)) <= s.cfg.MaxRequestBytes {
			target.body = b
			r.Body = io.NopCloser(bytes.NewReader(b))
		} else {
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b), r.Body))
		}
	}
	// The owner paces long responses (SSE heartbeats); this node's server
	// write timeout must not cut them.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	s.metrics.forwarded.Inc()
	s.fwd.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), forwardTargetKey{}, target)))
	return true
}
