package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"mellium.im/xmpp/jid"
)

// Defaults for Config fields left zero.
const (
	DefaultLoginTimeout = 15 * time.Second
	// DefaultIdleTimeout closes streams nobody uses: no SSE subscriber and
	// no REST call for this long (the ancestor kept them forever).
	DefaultIdleTimeout  = 10 * time.Minute
	DefaultReconnectMin = 500 * time.Millisecond
	DefaultReconnectMax = 30 * time.Second
	// DefaultMaxStanzaBytes stays below Prosody's 256 KiB c2s stanza limit:
	// a larger stanza makes the server tear down the whole stream.
	DefaultMaxStanzaBytes = 200 * 1024
	// DefaultMaxReadBytes bounds one received top-level element: twice
	// Prosody's 256 KiB c2s stanza limit, room for what the server wraps
	// around a stanza (carbons, archive results) and for answers holding
	// several items. A larger stanza is skipped, not kept in memory.
	DefaultMaxReadBytes = 512 * 1024
	// DefaultStableAfter is how long a connection must stay up before the
	// reconnect backoff starts again from ReconnectMin.
	DefaultStableAfter = 30 * time.Second
	// DefaultMaxFlaps is how many times in a row a connection may drop
	// before it was stable: then the stream gives up (offline) instead of
	// reconnecting forever.
	DefaultMaxFlaps = 6
	// DefaultMaxStreams keeps one gateway well inside a 2-core box (each
	// stream is ~50 KB and a goroutine here, ~43 KB in Prosody).
	DefaultMaxStreams = 10000
	// DefaultMaxStreamsPerUser allows many tabs and devices but stops one
	// account from exhausting the gateway.
	DefaultMaxStreamsPerUser = 32
)

// Config configures a Manager.
type Config struct {
	Addr      string      // host:port of the XMPP server's c2s listener
	Domain    string      // XMPP domain users log in to
	TLS       TLSMode     // starttls (default), direct or none
	TLSConfig *tls.Config // optional; default verifies Domain against system roots
	// Mechanism forces a SASL mechanism (SCRAM-SHA-256, SCRAM-SHA-1 or
	// PLAIN); "" takes the best the server offers, SCRAM first.
	Mechanism      string
	LoginTimeout   time.Duration // overall login deadline; 0 = DefaultLoginTimeout
	IdleTimeout    time.Duration // 0 = DefaultIdleTimeout
	ReconnectMin   time.Duration // first backoff step; 0 = DefaultReconnectMin
	ReconnectMax   time.Duration // backoff cap; 0 = DefaultReconnectMax
	MaxStanzaBytes int           // 0 = DefaultMaxStanzaBytes
	// MaxReadBytes bounds one received top-level element in bytes; a
	// larger one is skipped (an error event), not read. 0 = DefaultMaxReadBytes.
	MaxReadBytes int
	// StableAfter is how long a connection must stay up for the reconnect
	// backoff to start over; 0 = DefaultStableAfter.
	StableAfter time.Duration
	// MaxFlaps is how many drops in a row of connections that did not stay
	// up for StableAfter a stream survives; the next one closes it
	// (offline). 0 = DefaultMaxFlaps.
	MaxFlaps int
	// TokenSecret (≥ 32 bytes) enables LoginAs; it is shared with the XMPP
	// server's token auth module. Empty disables logins on a user's behalf.
	TokenSecret  []byte
	XMPPTokenTTL time.Duration // 0 = DefaultXMPPTokenTTL
	// MaxStreams bounds all open streams; 0 = DefaultMaxStreams.
	MaxStreams int
	// MaxStreamsPerUser bounds one user's streams; 0 = DefaultMaxStreamsPerUser.
	MaxStreamsPerUser int
	// AutojoinBookmarks joins the rooms a user bookmarked with autojoin
	// when their stream logs in.
	AutojoinBookmarks bool
	// Registry, in cluster mode, records every stream where all nodes see
	// it, and enforces MaxStreams and MaxStreamsPerUser cluster-wide (this
	// node's own counts still apply too); nil: this process only.
	Registry StreamRegistry
	// ServiceAccount is the username system notifications come from (logged
	// in on its behalf, so TokenSecret is needed); "" disables Notify.
	ServiceAccount string
}

// Publisher receives a stream's events; package sse implements it. Topics
// are stream ids.
type Publisher interface {
	Open(topic string)
	Publish(topic string, data []byte) uint64
	CloseTopic(topic string)
	Subscribers(topic string) int
}

// Manager owns every stream: it logs them in, finds them, idles them out and
// closes them on shutdown.
type Manager struct {
	cfg    Config
	pub    Publisher
	log    *slog.Logger
	dialer dialFunc
	macKey []byte

	loginsOK, loginsFailed, reconnects, stanzasIn, stanzasOut atomic.Uint64

	mu      sync.Mutex
	streams map[string]*Stream
	closed  bool
	// pending counts logins in flight per user (and in total), see reserveCapacity.
	pending      map[string]int
	pendingTotal int
	// perUser counts open streams per bare JID, so a login's limit check
	// does not scan every stream.
	perUser map[string]int

	// mucServices caches per XMPP domain whether its disco#info says it is
	// a MUC service, for checkInvitation; bounded, least recently used out.
	mucServices *lru.Cache[string, bool]

	serviceMu sync.Mutex // serialises service-account logins
	service   *Stream

	// states writes takeover states to cfg.Registry (nil without one).
	states *stateWriter

	wg   sync.WaitGroup // stream goroutines, login goroutines, the reaper, writeStates
	stop chan struct{}
	// life ends with Close (endLife), cancelling logins in flight.
	life    context.Context
	endLife context.CancelFunc
}

// NewManager validates cfg, fills defaults and starts the idle reaper.
func NewManager(cfg Config, pub Publisher, log *slog.Logger) (*Manager, error) {
	if cfg.Addr == "" || cfg.Domain == "" {
		return nil, errors.New("gateway: Addr and Domain are required")
	}
	if _, err := jid.New("", cfg.Domain, ""); err != nil {
		return nil, fmt.Errorf("gateway: domain %q: %w", cfg.Domain, err)
	}
	switch cfg.TLS {
	case "":
		cfg.TLS = TLSStartTLS
	case TLSStartTLS, TLSDirect, TLSNone:
	default:
		return nil, fmt.Errorf("gateway: unknown TLS mode %q", cfg.TLS)
	}
	setDefault(&cfg.LoginTimeout, DefaultLoginTimeout)
	setDefault(&cfg.IdleTimeout, DefaultIdleTimeout)
	setDefault(&cfg.ReconnectMin, DefaultReconnectMin)
	setDefault(&cfg.ReconnectMax, DefaultReconnectMax)
	setDefault(&cfg.XMPPTokenTTL, DefaultXMPPTokenTTL)
	setDefault(&cfg.StableAfter, DefaultStableAfter)
	for _, v := range []struct {
		field *int
		def   int
	}{{&cfg.MaxStanzaBytes, DefaultMaxStanzaBytes}, {&cfg.MaxStreams, DefaultMaxStreams},
		{&cfg.MaxStreamsPerUser, DefaultMaxStreamsPerUser}, {&cfg.MaxReadBytes, DefaultMaxReadBytes},
		{&cfg.MaxFlaps, DefaultMaxFlaps}} {
		if *v.field <= 0 {
			*v.field = v.def
		}
	}
	if n := len(cfg.TokenSecret); n > 0 && n < 32 {
		return nil, errors.New("gateway: TokenSecret must be at least 32 bytes")
	}
	if cfg.ServiceAccount != "" {
		if len(cfg.TokenSecret) == 0 {
			return nil, errors.New("gateway: ServiceAccount needs TokenSecret (it logs in on the account's behalf)")
		}
		if _, err := UserJID(cfg.ServiceAccount, cfg.Domain); err != nil {
			return nil, fmt.Errorf("gateway: ServiceAccount: %w", err)
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	m := &Manager{cfg: cfg, pub: pub, log: log.With(slog.String("tag", "xmpp")), macKey: key,
		streams: map[string]*Stream{}, stop: make(chan struct{})}
	m.life, m.endLife = context.WithCancel(context.Background())
	m.mucServices, _ = lru.New[string, bool](mucServiceCacheSize) // errors only for a size ≤ 0
	m.dialer = m.dial
	m.wg.Add(1)
	go m.reapIdle()
	if cfg.Registry != nil {
		m.states = newStateWriter()
		m.wg.Add(1)
		go m.writeStates()
	}
	return m, nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

// Domain returns the XMPP domain.
func (m *Manager) Domain() string { return m.cfg.Domain }

// Login authenticates username with password at the XMPP server and opens a
// new stream. resource is an optional prefix for the XMPP resource; a random
// suffix keeps every stream's resource unique.
func (m *Manager) Login(ctx context.Context, username, password, resource string) (*Stream, error) {
	if password == "" {
		return nil, fmt.Errorf("%w: empty password", ErrAuthFailed)
	}
	user, err := UserJID(username, m.cfg.Domain)
	if err != nil {
		return nil, err
	}
	return m.open(ctx, &Stream{user: user, creds: passwordCredentials(password),
		pwMAC: m.passwordMAC(user, password)}, resource)
}

// LoginAs opens a stream for username without their password, logging in
// with a short-lived token the XMPP server's auth module accepts. Only
// available when Config.TokenSecret is set; callers must have checked that
// the requester is an admin.
func (m *Manager) LoginAs(ctx context.Context, username, resource string) (*Stream, error) {
	if len(m.cfg.TokenSecret) == 0 {
		return nil, ErrOnBehalfDisabled
	}
	user, err := UserJID(username, m.cfg.Domain)
	if err != nil {
		return nil, err
	}
	if svc := m.probingStream(ctx, user); svc != nil {
		exists, err := svc.accountExists(ctx, user) // account.go
		if err != nil {
			return nil, err
		}
		if !exists {
			return nil, fmt.Errorf("%w: %s", ErrNoSuchAccount, user)
		}
	}
	creds := tokenCredentials{user: user, key: m.cfg.TokenSecret, ttl: m.cfg.XMPPTokenTTL}
	s, err := m.open(ctx, &Stream{user: user, creds: creds, onBehalf: true}, resource)
	if errors.Is(err, ErrAuthFailed) && m.probingStream(ctx, user) != nil {
		// The service account's token login works, so the secret and the
		// clock are right: Prosody's mod_auth_xmppgw_jwt refuses such a
		// token only for an account that does not exist (account.go).
		return nil, fmt.Errorf("%w: %s (the server refused a valid token for it)", ErrNoSuchAccount, user)
	}
	return s, err
}

// probingStream is the service account's stream, which checks other
// accounts for on-behalf logins (account.go) and whose token login shows
// the gateway's tokens work; nil for the service account itself, without
// one configured, or when it cannot log in.
func (m *Manager) probingStream(ctx context.Context, user jid.JID) *Stream {
	if m.cfg.ServiceAccount == "" {
		return nil
	}
	svc, err := UserJID(m.cfg.ServiceAccount, m.cfg.Domain)
	if err != nil || svc.Equal(user.Bare()) {
		return nil
	}
	s, err := m.serviceStream(ctx)
	if err != nil {
		return nil
	}
	return s
}

// StreamRegistry records streams beyond this process (cluster mode).
type StreamRegistry interface {
	// Register records a stream about to log in; it fails with an error
	// wrapping ErrTooManyStreams or ErrCapacity when a cluster-wide cap is
	// reached.
	Register(ctx context.Context, s RegisteredStream) error
	// Unregister forgets a stream that ended (or never logged in).
	Unregister(ctx context.Context, id string)
	// SaveState records what a takeover needs to re-open the stream; an
	// error wrapping ErrNotOwner means another node owns it now.
	SaveState(ctx context.Context, id string, st TakeoverState) error
	// Release forgets a stream this node no longer owns (it yielded),
	// leaving its record, the new owner's, alone.
	Release(id string)
}

// RegisteredStream is what the registry keeps of a stream.
type RegisteredStream struct {
	ID, JID, Resource string
	Created           time.Time
	OnBehalf          bool
}

// registryTimeout bounds a registry call: a slow Redis must not stall a
// login past its own deadline, nor a stream's exit.
const registryTimeout = 2 * time.Second

// open logs in the stream s describes (user, creds and their kind set),
// registers it and starts its goroutine.
func (m *Manager) open(ctx context.Context, s *Stream, resource string) (*Stream, error) {
	if err := ValidateResource(resource); err != nil {
		return nil, err
	}
	if resource == "" {
		resource = "xmppgw"
	}
	s.resource = resource + "." + randomHex(6)
	release, err := m.reserveCapacity(s.user)
	if err != nil {
		return nil, err
	}
	defer release()
	s.id = newStreamID()
	if reg := m.cfg.Registry; reg != nil {
		// Before the XMPP login: a user at the cluster's cap costs the
		// server nothing.
		rctx, cancel := context.WithTimeout(ctx, registryTimeout)
		err := reg.Register(rctx, RegisteredStream{ID: s.id, JID: s.user.String(), Resource: s.resource,
			Created: time.Now(), OnBehalf: s.onBehalf})
		cancel()
		if err != nil {
			return nil, err
		}
	}
	c, err := m.dialer(ctx, s.user, s.creds, s.resource)
	if err != nil {
		m.unregister(s.id)
		m.loginsFailed.Add(1)
		m.log.Info("login failed", slog.String("error", err.Error()), slog.Bool("on_behalf", s.onBehalf))
		return nil, err
	}
	m.loginsOK.Add(1)
	s.created = time.Now()
	if err := m.start(s, c, time.Time{}); err != nil {
		m.unregister(s.id)
		return nil, err
	}
	s.log.Info("stream opened", slog.Bool("on_behalf", s.onBehalf))
	return s, nil
}

// start makes s, logged in on c, one of the manager's streams and starts
// its reader; dropped is when its events stopped (zero for a new login):
// after a takeover the rooms are re-joined and the archive gap-filled
// from there.
func (m *Manager) start(s *Stream, c conn, dropped time.Time) error {
	s.mgr, s.conn, s.full, s.state = m, c, c.JID(), StateOnline
	s.stopCtx, s.cancelStop = context.WithCancel(context.Background())
	s.stop, s.done = s.stopCtx.Done(), make(chan struct{})
	s.invitationChecks = make(chan struct{}, maxInvitationChecks)
	s.log = m.log.With(slog.String("stream", s.id[:8]))
	s.Touch()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		_ = c.Close()
		return ErrClosed
	}
	m.streams[s.id] = s
	if m.perUser == nil {
		m.perUser = map[string]int{}
	}
	m.perUser[s.user.String()]++
	m.pub.Open(s.id)
	m.wg.Add(1)
	m.mu.Unlock()
	state := StateOnline
	if !dropped.IsZero() {
		state = StateResumed
		if p := s.Presence(); p.Show != "" || p.Status != "" || p.Priority != 0 || p.Type != "" {
			if raw, err := encodePresence(p); err == nil {
				_ = s.send(context.Background(), raw) // the presence the stream had
			}
		}
	}
	s.publish(StreamEvent{Type: EventStream, State: state, JID: s.full})
	if !dropped.IsZero() {
		s.catchUp.begin() // before the reader starts: the gap-fill ends it
	}
	go func() {
		defer m.wg.Done()
		s.run(c)
	}()
	s.afterConnect(dropped)
	return nil
}

// reserveCapacity enforces the per-user and total stream limits before a
// login costs the XMPP server anything. Logins in flight hold a
// reservation (released by the returned func), so parallel logins cannot
// all pass the check before any of them is registered.
func (m *Manager) reserveCapacity(user jid.JID) (func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	key := user.String()
	if len(m.streams)+m.pendingTotal >= m.cfg.MaxStreams {
		return nil, fmt.Errorf("%w: %d streams open", ErrCapacity, len(m.streams))
	}
	if n := m.pending[key] + m.perUser[key]; n >= m.cfg.MaxStreamsPerUser {
		return nil, fmt.Errorf("%w: %d streams open for this user", ErrTooManyStreams, n)
	}
	if m.pending == nil {
		m.pending = map[string]int{}
	}
	m.pending[key]++
	m.pendingTotal++
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.pending[key]--; m.pending[key] <= 0 {
			delete(m.pending, key)
		}
		m.pendingTotal--
	}, nil
}

// Streams returns every live stream, oldest first.
func (m *Manager) Streams() []*Stream {
	m.mu.Lock()
	out := make([]*Stream, 0, len(m.streams))
	for _, s := range m.streams {
		out = append(out, s)
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].created.Before(out[j].created) })
	return out
}

// Stream returns the live stream with that id.
func (m *Manager) Stream(id string) (*Stream, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.streams[id]; ok {
		return s, nil
	}
	return nil, ErrStreamNotFound
}

// StreamsOf returns user's live streams, newest first.
func (m *Manager) StreamsOf(user jid.JID) []*Stream {
	m.mu.Lock()
	var out []*Stream
	for _, s := range m.streams {
		if s.user.Equal(user.Bare()) {
			out = append(out, s)
		}
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].created.After(out[j].created) })
	return out
}

// Logoff closes a stream: unavailable presence, stream closed, its event
// topic (and so every SSE connection on it) ended.
func (m *Manager) Logoff(ctx context.Context, id string) error {
	s, err := m.Stream(id)
	if err != nil {
		return err
	}
	s.Close(ctx, "logoff")
	return nil
}

// remove forgets a finished stream and ends its event topic. Called from the
// stream's own goroutine as it exits.
func (m *Manager) remove(s *Stream) {
	m.mu.Lock()
	if _, ok := m.streams[s.id]; ok {
		delete(m.streams, s.id)
		if key := s.user.String(); m.perUser[key] <= 1 {
			delete(m.perUser, key)
		} else {
			m.perUser[key]--
		}
	}
	m.mu.Unlock()
	m.pub.CloseTopic(s.id)
	switch {
	case m.cfg.Registry == nil:
	case s.hasYielded(): // its record is its new owner's
		m.cfg.Registry.Release(s.id)
	default:
		m.unregister(s.id)
	}
}

// unregister forgets a stream in the registry, if there is one.
func (m *Manager) unregister(id string) {
	if m.cfg.Registry == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), registryTimeout)
	defer cancel()
	m.cfg.Registry.Unregister(ctx, id)
}

// Ready reports whether the XMPP server accepts TCP connections.
func (m *Manager) Ready(ctx context.Context) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", m.cfg.Addr)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrServerUnreachable, err)
	}
	return c.Close()
}

// Close closes every stream (unavailable presence first) with bounded
// concurrency and stops the reaper. It is idempotent.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	streams := make([]*Stream, 0, len(m.streams))
	for _, s := range m.streams {
		streams = append(streams, s)
	}
	m.mu.Unlock()
	close(m.stop)
	m.endLife()
	sem := make(chan struct{}, 16) // bound the burst of goodbyes to the server
	var wg sync.WaitGroup
	for _, s := range streams {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			s.Close(ctx, "shutdown")
		}()
	}
	wg.Wait()
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("gateway: close: %w", ctx.Err())
	}
}

func (m *Manager) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// reapIdle closes streams with no SSE subscriber and no REST call for
// IdleTimeout.
func (m *Manager) reapIdle() {
	defer m.wg.Done()
	every := min(max(m.cfg.IdleTimeout/4, 50*time.Millisecond), 30*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			m.mu.Lock()
			var idle []*Stream
			for id, s := range m.streams {
				if m.pub.Subscribers(id) > 0 {
					s.Touch()
					continue
				}
				if now.Sub(s.LastActivity()) > m.cfg.IdleTimeout {
					idle = append(idle, s)
				}
			}
			m.mu.Unlock()
			for _, s := range idle {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				s.Close(ctx, "idle")
				cancel()
			}
		}
	}
}

func (m *Manager) passwordMAC(user jid.JID, password string) []byte {
	h := hmac.New(sha256.New, m.macKey)
	h.Write([]byte(user.String()))
	h.Write([]byte{0})
	h.Write([]byte(password))
	return h.Sum(nil)
}

func isAuthError(err error) bool { return errors.Is(err, ErrAuthFailed) }

// newStreamID returns 144 random bits, URL-safe: the stream id is a
// capability, so it must be unguessable (the ancestor's was time-seeded).
func newStreamID() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func newStanzaID() string { return randomHex(12) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Stats are the manager's counters, for metrics.
type Stats struct {
	// Streams counts live streams by state (online, reconnecting, offline).
	Streams                                                   map[string]int
	LoginsOK, LoginsFailed, Reconnects, StanzasIn, StanzasOut uint64
}

// Stats returns the current counters.
func (m *Manager) Stats() Stats {
	st := Stats{Streams: map[string]int{StateOnline: 0, StateReconnecting: 0, StateOffline: 0},
		LoginsOK: m.loginsOK.Load(), LoginsFailed: m.loginsFailed.Load(), Reconnects: m.reconnects.Load(),
		StanzasIn: m.stanzasIn.Load(), StanzasOut: m.stanzasOut.Load()}
	for _, s := range m.Streams() {
		st.Streams[s.State()]++
	}
	return st
}
