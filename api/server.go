package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/cors"
	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/gateway"
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
	Login(ctx context.Context, username, password, resource string) (*gateway.Stream, error)
	Stream(id string) (*gateway.Stream, error)
	StreamsOf(user jid.JID) []*gateway.Stream
	Logoff(ctx context.Context, id string) error
	Ready(ctx context.Context) error
}

// Events serves a stream's event topic over SSE (sse.Broker).
type Events interface {
	Serve(w http.ResponseWriter, r *http.Request, topic string, opts sse.ServeOptions) error
}

// Config configures the HTTP API.
type Config struct {
	JWTSecret       []byte        // HS256 key; at least 32 bytes
	TokenTTL        time.Duration // 0 = DefaultTokenTTL
	CORSOrigins     []string      // allowed browser origins; empty = no CORS
	MaxRequestBytes int64         // 0 = DefaultMaxRequestBytes
}

// Server holds the handlers' dependencies.
type Server struct {
	cfg     Config
	streams Streams
	events  Events
	tokens  *tokens
	log     *slog.Logger
}

// NewServer builds the API server.
func NewServer(cfg Config, streams Streams, events Events, log *slog.Logger) *Server {
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, streams: streams, events: events,
		tokens: newTokens(cfg.JWTSecret, tokenIssuer, cfg.TokenTTL), log: log.With(slog.String("tag", "http"))}
}

// Routes returns the router. It reads like a table: public routes, then the
// stream-scoped ones, each also reachable without the {streamid} segment
// (the ancestor's summary form; the stream then comes from the token).
func (s *Server) Routes() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.RequestID, s.logRequests, s.recoverPanics, securityHeaders)
	if len(s.cfg.CORSOrigins) > 0 {
		r.Use(cors.Handler(cors.Options{
			AllowedOrigins:   s.cfg.CORSOrigins,
			AllowedMethods:   []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions},
			AllowedHeaders:   []string{"Authorization", "Content-Type", "Last-Event-ID", "X-Request-Id"},
			ExposedHeaders:   []string{"X-Request-Id", "WWW-Authenticate"},
			AllowCredentials: !contains(s.cfg.CORSOrigins, "*"),
			MaxAge:           600,
		}))
	}
	r.NotFound(s.handle(func(http.ResponseWriter, *http.Request) error { return errNotFound }))
	r.MethodNotAllowed(s.handle(func(http.ResponseWriter, *http.Request) error { return errMethodNotAllowed }))

	r.Get("/healthz", s.handle(s.healthz))
	r.Get("/readyz", s.handle(s.readyz))
	r.Get("/openapi/swagger.json", s.handle(s.openAPISpec))

	r.Route("/restapi/v1/chat", func(r chi.Router) {
		r.Post("/login", s.handle(s.login))
		r.Post("/{username}/login", s.handle(s.login))
		for _, prefix := range []string{"", "/{streamid}"} {
			r.Post(prefix+"/logoff", s.streamRoute(s.logoff))
			r.Post(prefix+"/presence", s.streamRoute(s.setPresence))
			r.Post(prefix+"/messages/{jid}", s.streamRoute(s.sendMessage))
			r.Get(prefix+"/events", s.eventsRoute(s.streamEvents))
		}
	})
	return r
}

// handlerFunc is a handler that returns its error to the one error mapper.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// streamHandlerFunc is a handler acting on an authenticated caller's stream.
type streamHandlerFunc func(w http.ResponseWriter, r *http.Request, p *principal, st *gateway.Stream) error

func (s *Server) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	}
}

func (s *Server) streamRoute(h streamHandlerFunc) http.HandlerFunc {
	return s.scoped(h, false)
}

func (s *Server) eventsRoute(h streamHandlerFunc) http.HandlerFunc {
	return s.scoped(h, true)
}

func (s *Server) scoped(h streamHandlerFunc, allowQueryToken bool) http.HandlerFunc {
	return s.handle(func(w http.ResponseWriter, r *http.Request) error {
		p, err := s.authenticate(r, allowQueryToken)
		if err != nil {
			return err
		}
		st, err := s.resolveStream(p, chi.URLParam(r, "streamid"))
		if err != nil {
			return err
		}
		st.Touch()
		return h(w, r, p, st)
	})
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
