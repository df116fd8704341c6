package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/cors"
	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/fastpath"
	"github.com/xmppgw/xmppgw/gateway"
	"github.com/xmppgw/xmppgw/internal/cluster"
	"github.com/xmppgw/xmppgw/sse"
)

// Defaults for Config fields left zero.
const (
	DefaultTokenTTL = 12 * time.Hour
	// DefaultMaxRequestBytes fits the largest stanza the gateway sends plus
	// JSON overhead.
	DefaultMaxRequestBytes = 1 << 20
	tokenIssuer            = "xmppgw"
)

// Streams is what the API needs of the stream manager (gateway.Manager).
type Streams interface {
	Domain() string
	Login(ctx context.Context, username, password, resource string) (Stream, error)
	LoginAs(ctx context.Context, username, resource string) (Stream, error)
	Stream(id string) (Stream, error)
	Streams() []Stream
	StreamsOf(user jid.JID) []Stream
	Logoff(ctx context.Context, id string) error
	Notify(ctx context.Context, to jid.JID, body string, params map[string]string) (string, error)
	Ready(ctx context.Context) error
	Stats() gateway.Stats
}

// Events serves a stream's event topic over SSE (sse.Broker).
type Events interface {
	Serve(w http.ResponseWriter, r *http.Request, topic string, opts sse.ServeOptions) error
	Subscribers(topic string) int
	Stats() sse.Stats
}

// Defaults of the abuse limits.
const (
	// DefaultLoginFailuresPerUser allows a few typos a minute per username
	// while making online guessing hopeless.
	DefaultLoginFailuresPerUser = 5
	// DefaultLoginFailuresPerIP is higher: many users can share an address.
	DefaultLoginFailuresPerIP = 30
	// DefaultSendsPerSecond per stream is far above human typing and keeps
	// one stream from flooding the XMPP server.
	DefaultSendsPerSecond = 20
	// DefaultMaxMessageBytes bounds a message body (the stanza limit still
	// applies to body + data together).
	DefaultMaxMessageBytes = 128 * 1024
)

// Config configures the HTTP API.
type Config struct {
	JWTSecret       []byte        // HS256 key; at least 32 bytes
	TokenTTL        time.Duration // 0 = DefaultTokenTTL
	CORSOrigins     []string      // allowed browser origins; empty = no CORS
	MaxRequestBytes int64         // 0 = DefaultMaxRequestBytes
	MaxMessageBytes int           // 0 = DefaultMaxMessageBytes
	// AdminUser and AdminPassword are the gateway's admin credentials
	// (HTTP Basic); empty disables Basic admin access.
	AdminUser, AdminPassword string
	// TrustedProxies are the peers whose X-Forwarded-For is believed;
	// empty (the default) believes none.
	TrustedProxies []netip.Prefix
	// LoginFailuresPerUser / PerIP are failed logins allowed per minute
	// (also the burst); 0 = defaults.
	LoginFailuresPerUser, LoginFailuresPerIP int
	// SendsPerSecond is the per-stream send rate (burst twice that); 0 = default.
	SendsPerSecond int
	// WebUI serves the demo chat page at / (assets under /ui/).
	WebUI bool
	// Fastpath runs the workgroup queues (api/fastpath.go); nil answers 503.
	Fastpath *fastpath.Service
	// FastpathCluster, in cluster mode, replaces Fastpath: the queues run
	// on the cluster's leader, which other nodes call (api/fastpath_engine.go).
	FastpathCluster FastpathCluster
	// StreamPresence, in cluster mode, is what the cluster's registry knows
	// of a stream another node holds (registered, presence, rooms), for the
	// queues' hooks on the leader.
	StreamPresence func(ctx context.Context, streamID string) (gateway.TakeoverState, bool, error)
	// Limiters builds the failed-login limiters; nil means
	// NewLocalLimiter, buckets in this process. Cluster mode shares them
	// through Redis so that every node counts the same guesses.
	Limiters LimiterFactory
	// Revocations, in cluster mode, shares token revocations with the
	// other nodes (feed theirs in with ApplyRevocation); nil keeps them in
	// this process.
	Revocations RevocationStore
	// NodeName names this node in the admin stream list (cluster mode).
	NodeName string
	// ClusterStreams, in cluster mode, lists the whole cluster's streams for
	// the admin list; nil lists this process's only.
	ClusterStreams func(context.Context) ([]cluster.StreamRecord, error)
	// Forward, in cluster mode, finds the node holding a stream this node
	// does not, and requests for it are proxied there over the internal
	// listener with ClusterSecret; nil answers 404 for them.
	Forward       Forwarder
	ClusterSecret []byte
	// Relay, in cluster mode, mirrors a stream's events from the cluster's
	// log into this node's broker while it has subscribers here, so the
	// events route serves any stream of the cluster on any node;
	// ClusterStream finds the stream's record (owner, user) for that. nil
	// serves the broker's own topics.
	Relay         EventRelay
	ClusterStream func(ctx context.Context, streamID string) (cluster.StreamRecord, error)
	// ClusterStats, in cluster mode, reads the node's cluster figures for
	// /metrics; nil adds none.
	ClusterStats func() ClusterStats
	// ClusterReady, in cluster mode, reports whether this node can reach the
	// cluster's store and holds its lease; /readyz answers 503 while not.
	ClusterReady func(context.Context) error
}

// Server holds the handlers' dependencies.
type Server struct {
	cfg     Config
	streams Streams
	fwd     *forwarding // cluster mode: forward's proxy and owner cache
	events  Events
	tokens  *tokens
	log     *slog.Logger
	audit   *slog.Logger

	// Failed password guesses per (name, address), per address and per name
	// (checkGuess); sends per stream.
	failedByPair, failedByIP, failedByName, sends KeyedLimiter
	metrics                                       *metrics
}

// NewServer builds the API server.
func NewServer(cfg Config, streams Streams, events Events, log *slog.Logger) *Server {
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.Limiters == nil {
		cfg.Limiters = NewLocalLimiter
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.LoginFailuresPerUser <= 0 {
		cfg.LoginFailuresPerUser = DefaultLoginFailuresPerUser
	}
	if cfg.LoginFailuresPerIP <= 0 {
		cfg.LoginFailuresPerIP = DefaultLoginFailuresPerIP
	}
	if cfg.SendsPerSecond <= 0 {
		cfg.SendsPerSecond = DefaultSendsPerSecond
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &Server{cfg: cfg, streams: streams, events: events,
		tokens: newTokens(cfg.JWTSecret, tokenIssuer, cfg.TokenTTL), log: log.With(slog.String("tag", "http")),
		audit:        log.With(slog.String("tag", "audit")),
		failedByPair: cfg.Limiters("login-pair", float64(cfg.LoginFailuresPerUser), cfg.LoginFailuresPerUser),
		failedByName: cfg.Limiters("login-name", float64(cfg.LoginFailuresPerUser*loginNameFactor), cfg.LoginFailuresPerUser*loginNameFactor),
		failedByIP:   cfg.Limiters("login-address", float64(cfg.LoginFailuresPerIP), cfg.LoginFailuresPerIP),
		// Per stream, and a stream's sends always run on the node holding
		// it (others forward to it): its bucket stays in process, with no
		// Redis round trip per message.
		sends: newLimiterSet(float64(cfg.SendsPerSecond*60), cfg.SendsPerSecond*2)}
	srv.tokens.shared, srv.tokens.log = cfg.Revocations, srv.log
	srv.metrics = srv.newMetrics()
	if cfg.Forward != nil {
		srv.fwd = srv.newForwarding()
	}
	return srv
}

// ApplyRevocation takes a revocation another node made ("jti:<id>" or
// "sid:<stream>", until when it matters): tokens it covers are refused from
// now on, and their event streams end.
func (s *Server) ApplyRevocation(key string, until time.Time) {
	if !until.After(time.Now()) {
		return
	}
	s.tokens.denyKey(key, until)
}

// ResyncRevocations asks Config.Revocations again about the tokens of every
// open event stream, after revocations may have been missed (pub/sub
// reconnected).
func (s *Server) ResyncRevocations(ctx context.Context) error {
	if s.cfg.Revocations == nil {
		return nil
	}
	for _, key := range s.tokens.watchedKeys() {
		revoked, err := s.cfg.Revocations.Revoked(ctx, key)
		if err != nil {
			return err
		}
		if revoked {
			s.tokens.denyKey(key, time.Now().Add(s.cfg.TokenTTL))
		}
	}
	return nil
}

// MintAdminToken mints an admin bearer token signed with secret, as
// `xmppgw token --admin` does; the server accepts it while it shares the
// secret.
func MintAdminToken(secret []byte, name string, ttl time.Duration) (string, time.Time, error) {
	return newTokens(secret, tokenIssuer, ttl).issueAdmin(name, ttl)
}

// Routes returns the router. It reads like a table: public routes, then the
// stream-scoped ones, each also reachable without the {streamid} segment
// (the ancestor's summary form; the stream then comes from the token).
func (s *Server) Routes() http.Handler {
	r := chi.NewRouter()
	r.Use(requestID, s.logRequests, s.recoverPanics, securityHeaders)
	if len(s.cfg.CORSOrigins) > 0 {
		// Retry-After is exposed because it is not a CORS-safelisted
		// response header: a page on another origin could not read when to
		// retry a 429/503 otherwise.
		r.Use(cors.Handler(cors.Options{
			AllowedOrigins:   s.cfg.CORSOrigins,
			AllowedMethods:   []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions},
			AllowedHeaders:   []string{"Authorization", "Content-Type", "Last-Event-ID", "X-Request-Id"},
			ExposedHeaders:   []string{"X-Request-Id", "WWW-Authenticate", "Retry-After"},
			AllowCredentials: !contains(s.cfg.CORSOrigins, "*"),
			MaxAge:           600,
		}))
	}
	r.NotFound(s.handle(func(http.ResponseWriter, *http.Request) error { return errNotFound }))
	r.MethodNotAllowed(s.handle(func(http.ResponseWriter, *http.Request) error { return errMethodNotAllowed }))

	r.Get("/healthz", s.handle(s.healthz))
	r.Get("/metrics", s.adminRoute(s.serveMetrics))
	r.Get("/readyz", s.handle(s.readyz))
	r.Get("/openapi/swagger.json", s.handle(s.openAPISpec))
	s.mountWeb(r) // /docs/ (Swagger UI), /openapi/swagger.yaml, and / (demo chat page) when WebUI is set

	r.Route("/restapi/v1/chat", func(r chi.Router) {
		r.Post("/login", s.handle(s.login))
		r.Post("/{username}/login", s.handle(s.login))
		r.Delete("/token", s.handle(s.revokeToken))
		// The summary forms of these two are the ancestor's room directory;
		// only the {streamid} form lists the stream's joined rooms.
		r.Get("/rooms", s.streamRoute(on(asRooms, s.listPublicRooms)))
		r.Get("/rooms/{room}", s.streamRoute(on(asRooms, s.roomInfo)))
		r.Get("/{streamid}/rooms", s.streamRoute(on(asRooms, s.listJoinedRooms)))
		r.Get("/users", s.streamRoute(on(asUsers, s.searchUsers)))
		for _, prefix := range []string{"", "/{streamid}"} {
			r.Post(prefix+"/logoff", s.streamRoute(on(asIdentity, s.logoff)))
			r.Post(prefix+"/token", s.streamRoute(on(asIdentity, s.refreshToken)))
			r.Post(prefix+"/presence", s.streamRoute(on(asPresence, s.setPresence)))
			r.Post(prefix+"/messages/{jid}", s.streamRoute(on(asMessages, s.sendMessage)))
			r.Put(prefix+"/messages/{jid}/{id}", s.streamRoute(on(asMessages, s.editMessage)))
			r.Delete(prefix+"/messages/{jid}/{id}", s.streamRoute(on(asMessages, s.deleteMessage)))
			r.Post(prefix+"/messages/{jid}/{id}/{marker}", s.streamRoute(on(asMessages, s.sendMarker)))
			r.Get(prefix+"/messages", s.streamRoute(on(asHistory, s.getHistory)))
			r.Post(prefix+"/chatstate/{state}/{jid}", s.streamRoute(on(asMessages, s.sendChatState)))
			r.Post(prefix+"/commands/{jid}", s.streamRoute(on(asCommands, s.sendCommand)))
			r.Post(prefix+"/xmpp", s.streamRoute(on(asCommands, s.sendRaw)))
			r.Get(prefix+"/vcard", s.streamRoute(on(asVCard, s.getOwnVCard)))
			r.Get(prefix+"/vcard/{jid}", s.streamRoute(on(asVCard, s.getVCard)))
			r.Put(prefix+"/vcard", s.streamRoute(on(asVCard, s.putVCard)))
			r.Get(prefix+"/contacts", s.streamRoute(on(asRoster, s.listContacts)))
			r.Post(prefix+"/contacts/{jid}", s.streamRoute(on(asRoster, s.addContact)))
			r.Put(prefix+"/contacts/{jid}", s.streamRoute(on(asRoster, s.updateContact)))
			r.Delete(prefix+"/contacts/{jid}", s.streamRoute(on(asRoster, s.removeContact)))
			r.Post(prefix+"/contacts/{jid}/approve", s.streamRoute(on(asRoster, s.approveContact)))
			r.Post(prefix+"/contacts/{jid}/deny", s.streamRoute(on(asRoster, s.denyContact)))
			r.Post(prefix+"/rooms", s.streamRoute(on(asRooms, s.createRoom)))
			r.Put(prefix+"/rooms/{room}", s.streamRoute(on(asRooms, s.joinRoom)))
			r.Delete(prefix+"/rooms/{room}", s.streamRoute(on(asRooms, s.leaveRoom)))
			r.Post(prefix+"/rooms/{room}", s.streamRoute(on(asRooms, s.postRoomMessage)))
			r.Post(prefix+"/rooms/{room}/{jid}", s.streamRoute(on(asRooms, s.inviteToRoom)))
			r.Put(prefix+"/rooms/{room}/subject", s.streamRoute(on(asRooms, s.setRoomSubject)))
			r.Get(prefix+"/rooms/{room}/occupants", s.streamRoute(on(asRooms, s.listOccupants)))
			r.Get(prefix+"/rooms/{room}/config", s.streamRoute(on(asRooms, s.getRoomConfig)))
			r.Put(prefix+"/rooms/{room}/config", s.streamRoute(on(asRooms, s.putRoomConfig)))
			r.Post(prefix+"/rooms/{room}/destroy", s.streamRoute(on(asRooms, s.destroyRoom)))
			r.Put(prefix+"/rooms/{room}/affiliations/{jid}", s.streamRoute(on(asRooms, s.setAffiliation)))
			r.Put(prefix+"/rooms/{room}/roles/{nick}", s.streamRoute(on(asRooms, s.setRole)))
			r.Get(prefix+"/rooms/{room}/messages", s.streamRoute(on(asRooms, s.roomHistory)))
			r.Get(prefix+"/users/properties", s.streamRoute(on(asUsers, s.listProperties)))
			r.Post(prefix+"/users/{property}", s.streamRoute(on(asUsers, s.setProperty)))
			r.Delete(prefix+"/users/{property}", s.streamRoute(on(asUsers, s.deleteProperty)))
			r.Get(prefix+"/bookmarks", s.streamRoute(on(asUsers, s.listBookmarks)))
			r.Put(prefix+"/bookmarks", s.streamRoute(on(asUsers, s.putBookmarks)))
			r.Get(prefix+"/events", s.eventsRoute(s.streamEvents))
		}
		// PubSub (XEP-0060, api/pubsub.go) and the WebSocket transport (api/ws.go).
		for _, prefix := range []string{"", "/{streamid}"} {
			r.Get(prefix+"/pubsub/{service}/{node}/subscriptions", s.streamRoute(on(asPubSub, s.listPubSubSubscriptions)))
			r.Post(prefix+"/pubsub/{service}/{node}/subscriptions", s.streamRoute(on(asPubSub, s.subscribePubSub)))
			r.Delete(prefix+"/pubsub/{service}/{node}/subscriptions/{subid}", s.streamRoute(on(asPubSub, s.unsubscribePubSub)))
			r.Post(prefix+"/pubsub/{service}/{node}/items", s.streamRoute(on(asPubSub, s.publishItem)))
			r.Get(prefix+"/pubsub/{service}/{node}/items", s.streamRoute(on(asPubSub, s.listItems)))
			r.Get(prefix+"/pubsub/{service}/{node}/items/{id}", s.streamRoute(on(asPubSub, s.getItem)))
			r.Delete(prefix+"/pubsub/{service}/{node}/items/{id}", s.streamRoute(on(asPubSub, s.retractItem)))
			r.Get(prefix+"/ws", s.scoped(on(asWebSocket, s.streamWebSocket), fromHeaderOrQuery))
		}
		s.fastpathChatRoutes(r) // assists, offers (api/fastpath.go)
	})
	s.askRoutes(r) // /restapi/v1/ask (api/fastpath.go)
	r.Route("/restapi/v1/admin", func(r chi.Router) {
		r.Get("/streams", s.adminRoute(s.listStreams))
		r.Delete("/streams/{streamid}", s.adminRoute(s.killStream))
		r.Post("/notifications/{username}", s.adminRoute(s.sendNotification))
		s.fastpathAdminRoutes(r) // workgroups (api/fastpath.go)
	})
	return r
}

// handlerFunc is a handler that returns its error to the one error mapper.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// streamHandlerFunc is a handler acting on an authenticated caller's stream.
type streamHandlerFunc func(w http.ResponseWriter, r *http.Request, p *principal, st Stream) error

// principalHandlerFunc is a handler for an authenticated caller.
type principalHandlerFunc func(w http.ResponseWriter, r *http.Request, p *principal) error

func (s *Server) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	}
}

func (s *Server) streamRoute(h streamHandlerFunc) http.HandlerFunc {
	return s.scoped(h, fromHeader)
}

// eventsRoute serves a stream's events. In cluster mode a stream held by
// another node is served here too, from the cluster's log (api/events.go),
// so an event stream survives the node holding the XMPP session.
func (s *Server) eventsRoute(h eventHandlerFunc) http.HandlerFunc {
	if s.cfg.Relay == nil || s.cfg.ClusterStream == nil {
		return s.scoped(func(w http.ResponseWriter, r *http.Request, p *principal, st Stream) error {
			return h(w, r, p, eventTarget{id: st.ID(), st: st})
		}, fromHeaderQueryOrCookie)
	}
	return s.handle(func(w http.ResponseWriter, r *http.Request) error {
		p, err := s.streamCaller(r, fromHeaderQueryOrCookie)
		if err != nil {
			return err
		}
		t, err := s.resolveEventTarget(r.Context(), p, chi.URLParam(r, "streamid"))
		if err != nil {
			return err
		}
		s.auditStreamAction(r, p, t.user)
		t.touch()
		return h(w, r, p, t)
	})
}

// streamCaller authenticates the caller of a stream route.
func (s *Server) streamCaller(r *http.Request, src credentialSource) (*principal, error) {
	p, err := s.authenticate(r, src)
	if err != nil {
		return nil, err
	}
	return p, s.verifyBasicUser(r, p)
}

// auditStreamAction logs an admin's action on a user's stream.
func (s *Server) auditStreamAction(r *http.Request, p *principal, user string) {
	if p.admin {
		s.auditLog(r, p, "stream."+r.Method+" "+chi.RouteContext(r.Context()).RoutePattern(), user)
	}
}

// callerStreamID is the stream a request acts on: the one it names, or
// for a user's token without one, the token's.
func callerStreamID(p *principal, named string) string {
	if named == "" && p.claims != nil && !p.admin {
		return p.claims.SID
	}
	return named
}

func (s *Server) scoped(h streamHandlerFunc, src credentialSource) http.HandlerFunc {
	return s.handle(func(w http.ResponseWriter, r *http.Request) error {
		p, err := s.streamCaller(r, src)
		if err != nil {
			return err
		}
		if s.forward(w, r, p, callerStreamID(p, chi.URLParam(r, "streamid"))) {
			return nil
		}
		st, err := s.resolveStream(p, chi.URLParam(r, "streamid"))
		if err != nil {
			return err
		}
		s.auditStreamAction(r, p, st.User().String())
		st.Touch()
		return h(w, r, p, st)
	})
}

// adminRoute admits admin credentials only (authenticateAdmin): 401
// without credentials or with wrong Basic ones, 403 for a user token.
func (s *Server) adminRoute(h principalHandlerFunc) http.HandlerFunc {
	return s.handle(func(w http.ResponseWriter, r *http.Request) error {
		p, err := s.authenticateAdmin(r)
		if err != nil {
			return err
		}
		return h(w, r, p)
	})
}

// auditLog records an admin action: who, what, on whose behalf. Never a
// secret: the actor is a name, streams appear as 8-character prefixes.
func (s *Server) auditLog(r *http.Request, p *principal, action, onBehalfOf string, attrs ...slog.Attr) {
	attrs = append(attrs, slog.String("actor", p.name), slog.String("action", action),
		slog.String("on_behalf_of", onBehalfOf), slog.String("client_ip", s.clientIP(r)),
		slog.String("request_id", middleware.GetReqID(r.Context())))
	s.audit.LogAttrs(r.Context(), slog.LevelInfo, "admin action", attrs...)
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
