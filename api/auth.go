package api

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/gateway"
)

// roleAdmin marks admin tokens (minted by `xmppgw token --admin`).
const roleAdmin = "admin"

// tokenCookie is the HttpOnly cookie login can set for EventSource, which
// cannot send an Authorization header.
const tokenCookie = "xmppgw_token"

// tokenClaims are the claims of a gateway token: sub is the user's bare
// JID and sid the stream it was issued for; admin tokens carry role=admin
// and no sid.
type tokenClaims struct {
	SID  string `json:"sid,omitempty"`
	Role string `json:"role,omitempty"`
	jwt.RegisteredClaims
}

// tokens issues and verifies HS256 tokens, and revokes them: by token id
// (DELETE /chat/token) or by stream (logoff, admin kill). Revocations are
// kept until every token they cover has expired, and closing a revocation
// ends the event streams those tokens opened.
type tokens struct {
	secret []byte
	issuer string
	ttl    time.Duration
	now    func() time.Time

	mu       sync.Mutex
	revoked  map[string]time.Time // "jti:<id>" or "sid:<stream>" → when it can be forgotten
	watchers map[*tokenWatch]struct{}
	// verified caches parsed claims by raw token: parsing and checking the
	// signature was the largest single cost per REST call in the benchmarks.
	// Expiry and revocation are still checked on every use.
	verified map[string]*tokenClaims

	// shared, in cluster mode, stores revocations for every node; nil
	// keeps them in this process only. A node asks it the first time it
	// sees a token, and hears of later revocations through
	// Server.ApplyRevocation.
	shared RevocationStore
	log    *slog.Logger
}

// RevocationStore keeps token revocations where every node of a cluster
// finds them. key is "jti:<token id>" or "sid:<stream id>"; until is when
// every token the key covers has expired.
type RevocationStore interface {
	Revoke(ctx context.Context, key string, until time.Time) error
	Revoked(ctx context.Context, key string) (bool, error)
}

// sharedRevocationTimeout bounds one round trip to the RevocationStore.
const sharedRevocationTimeout = time.Second

// maxVerifiedCache bounds the cache; it is simply emptied when full.
const maxVerifiedCache = 10000

// tokenWatch is one open event stream waiting for its token's revocation.
type tokenWatch struct {
	jti, sid string
	cancel   context.CancelFunc
}

func newTokens(secret []byte, issuer string, ttl time.Duration) *tokens {
	return &tokens{secret: secret, issuer: issuer, ttl: ttl, now: time.Now,
		revoked: map[string]time.Time{}, watchers: map[*tokenWatch]struct{}{}, verified: map[string]*tokenClaims{}}
}

// issue mints a token for user's stream sid.
func (t *tokens) issue(user jid.JID, sid string) (string, time.Time, error) {
	return t.sign(tokenClaims{SID: sid}, user.String(), t.ttl)
}

// issueAdmin mints an admin token named after the admin.
func (t *tokens) issueAdmin(name string, ttl time.Duration) (string, time.Time, error) {
	return t.sign(tokenClaims{Role: roleAdmin}, name, ttl)
}

func (t *tokens) sign(c tokenClaims, subject string, ttl time.Duration) (string, time.Time, error) {
	now := t.now()
	exp := now.Add(ttl).Truncate(time.Second)
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	c.RegisteredClaims = jwt.RegisteredClaims{Subject: subject, Issuer: t.issuer, IssuedAt: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp), ID: base64.RawURLEncoding.EncodeToString(jti)}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.secret)
	return signed, exp, err
}

// verify checks signature, algorithm (never taken from the token header),
// issuer, expiry and revocation.
func (t *tokens) verify(raw string) (*tokenClaims, error) {
	t.mu.Lock()
	c, cached := t.verified[raw]
	t.mu.Unlock()
	if cached {
		if !t.now().Before(c.ExpiresAt.Time) {
			return nil, errTokenExpired
		}
		return t.checkRevoked(c)
	}
	c = &tokenClaims{}
	_, err := jwt.ParseWithClaims(raw, c, func(*jwt.Token) (any, error) { return t.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithExpirationRequired(),
		jwt.WithIssuer(t.issuer), jwt.WithTimeFunc(t.now))
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, errTokenExpired
	case err != nil:
		return nil, errInvalidToken
	case c.Subject == "" || c.ID == "" || (c.Role != roleAdmin && c.SID == "") || (c.Role != "" && c.Role != roleAdmin):
		return nil, errInvalidToken.wrap("missing or unknown claims")
	}
	if err := t.checkShared(c); err != nil {
		return nil, err
	}
	t.mu.Lock()
	if len(t.verified) >= maxVerifiedCache {
		clear(t.verified)
	}
	t.verified[raw] = c
	t.mu.Unlock()
	return t.checkRevoked(c)
}

// checkShared asks the cluster, once per token this node had not seen,
// whether another node revoked it (later revocations arrive through
// ApplyRevocation). While the store does not answer, the token is taken
// on this node's knowledge: a Redis outage must not log everyone out.
func (t *tokens) checkShared(c *tokenClaims) error {
	if t.shared == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedRevocationTimeout)
	defer cancel()
	keys := []string{"jti:" + c.ID}
	if c.SID != "" {
		keys = append(keys, "sid:"+c.SID)
	}
	for _, key := range keys {
		revoked, err := t.shared.Revoked(ctx, key)
		if err != nil {
			t.log.Warn("shared revocations unavailable", slog.String("error", err.Error()))
			return nil
		}
		if revoked {
			until := t.now().Add(t.ttl)
			if c.ExpiresAt != nil {
				until = c.ExpiresAt.Time
			}
			t.denyKey(key, until)
			return errTokenRevoked
		}
	}
	return nil
}

func (t *tokens) checkRevoked(c *tokenClaims) (*tokenClaims, error) {
	t.mu.Lock()
	_, byID := t.revoked["jti:"+c.ID]
	_, bySID := t.revoked["sid:"+c.SID]
	t.mu.Unlock()
	if byID || (c.SID != "" && bySID) {
		return nil, errTokenRevoked
	}
	return c, nil
}

// revoke denies one token until its expiry, here and (in cluster mode) on
// every node; an error means the other nodes could not be told.
func (t *tokens) revoke(c *tokenClaims) error {
	until := t.now()
	if c.ExpiresAt != nil {
		until = c.ExpiresAt.Time
	}
	// Shared first: if the other nodes cannot be told, nothing is revoked
	// and the caller can retry with the same token.
	key := "jti:" + c.ID
	if err := t.share(key, until); err != nil {
		return err
	}
	t.denyKey(key, until)
	return nil
}

// revokeStream denies every token issued for a stream; none can outlive
// the token TTL from now.
func (t *tokens) revokeStream(sid string) error {
	key, until := "sid:"+sid, t.now().Add(t.ttl)
	t.denyKey(key, until)
	return t.share(key, until)
}

// share stores a revocation for the other nodes (nothing to do on a
// single node).
func (t *tokens) share(key string, until time.Time) error {
	if t.shared == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedRevocationTimeout)
	defer cancel()
	return t.shared.Revoke(ctx, key, until)
}

// denyKey denies a "jti:" or "sid:" key locally and ends the event
// streams of the tokens it covers.
func (t *tokens) denyKey(key string, until time.Time) {
	kind, id, _ := strings.Cut(key, ":")
	t.deny(key, until, func(w *tokenWatch) bool {
		return kind == "jti" && w.jti == id || kind == "sid" && w.sid == id
	})
}

// watchedKeys lists the keys covering the tokens of open event streams,
// for a resync after missed revocations.
func (t *tokens) watchedKeys() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := map[string]bool{}
	var keys []string
	for w := range t.watchers {
		for _, k := range []string{"jti:" + w.jti, "sid:" + w.sid} {
			if !seen[k] && !strings.HasSuffix(k, ":") {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	return keys
}

func (t *tokens) deny(key string, until time.Time, covers func(*tokenWatch) bool) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	// Pruning here keeps the list bounded by the tokens still alive.
	for k, exp := range t.revoked {
		if now.After(exp) {
			delete(t.revoked, k)
		}
	}
	t.revoked[key] = until
	for w := range t.watchers {
		if covers(w) {
			w.cancel()
			delete(t.watchers, w)
		}
	}
}

// Why a token's connection ends: the cause (context.Cause) of the context
// tokenLife returns.
var (
	errLifeRevoked = errors.New("token revoked")
	errLifeExpired = errors.New("token expired")
)

// tokenLife is the one rule for every long-lived connection a token opens
// (SSE and WebSocket): it may outlive neither the token's expiry nor its
// revocation. The context ends with cause errLifeExpired or
// errLifeRevoked; release frees the watch.
func (t *tokens) tokenLife(c *tokenClaims) (context.Context, func()) {
	watched, unwatch := t.watch(c)
	ctx, cancel := context.WithCancelCause(context.Background())
	stopRevoked := context.AfterFunc(watched, func() { cancel(errLifeRevoked) })
	var expiry *time.Timer
	if c.ExpiresAt != nil {
		expiry = time.AfterFunc(c.ExpiresAt.Time.Sub(t.now()), func() { cancel(errLifeExpired) })
	}
	return ctx, func() {
		stopRevoked() // before unwatch, whose cancel is no revocation
		if expiry != nil {
			expiry.Stop()
		}
		unwatch()
		cancel(nil)
	}
}

// watch returns a context cancelled when c is revoked, and a release func.
// (A context, not a channel: an event stream on a taken-over connection has
// no goroutine to wait on a channel, but context.AfterFunc needs none.)
func (t *tokens) watch(c *tokenClaims) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	w := &tokenWatch{jti: c.ID, sid: c.SID, cancel: cancel}
	t.mu.Lock()
	// A revocation between verify and here must still end the stream.
	_, byID := t.revoked["jti:"+c.ID]
	_, bySID := t.revoked["sid:"+c.SID]
	if byID || (c.SID != "" && bySID) {
		t.mu.Unlock()
		cancel()
		return ctx, func() {}
	}
	t.watchers[w] = struct{}{}
	t.mu.Unlock()
	return ctx, func() {
		t.mu.Lock()
		delete(t.watchers, w)
		t.mu.Unlock()
		cancel()
	}
}

// principal is who a request authenticated as.
type principal struct {
	user   jid.JID      // zero for admins
	admin  bool         // admin credentials or an admin token
	name   string       // who, for the audit log (never a secret)
	claims *tokenClaims // nil for HTTP Basic
	// password is set for HTTP Basic users; checked against a stream.
	password string
}

// credentialSource says where authenticate may look besides the
// Authorization header: EventSource can send neither headers nor bodies.
type credentialSource int

const (
	fromHeader credentialSource = iota
	// fromHeaderOrQuery serves the WebSocket route: browsers cannot set its
	// headers either, but it carries commands, so the cookie (sent by the
	// browser on its own) must not be enough.
	fromHeaderOrQuery
	fromHeaderQueryOrCookie
)

// authenticate reads the Authorization header (or, for event streams, the
// token query parameter or the login cookie).
func (s *Server) authenticate(r *http.Request, src credentialSource) (*principal, error) {
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer") && cred != "":
		return s.bearer(strings.TrimSpace(cred))
	case strings.EqualFold(scheme, "Basic"):
		user, pass, ok := r.BasicAuth()
		if !ok {
			return nil, errUnauthorized.wrap("malformed Basic credentials")
		}
		if s.isAdminName(user) {
			if err := s.checkGuess(r, adminCredential, func() bool { return s.adminPasswordOK(pass) }); err != nil {
				return nil, err
			}
			return &principal{admin: true, name: "admin:" + user}, nil
		}
		j, err := gateway.UserJID(user, s.streams.Domain())
		if err != nil {
			return nil, errBadCredentials
		}
		return &principal{user: j, name: j.String(), password: pass}, nil
	case h != "":
		return nil, errUnauthorized.wrap("unsupported Authorization scheme")
	case src != fromHeader && r.URL.Query().Get("token") != "":
		return s.bearer(r.URL.Query().Get("token"))
	case src == fromHeaderQueryOrCookie:
		if c, err := r.Cookie(tokenCookie); err == nil && c.Value != "" {
			return s.bearer(c.Value)
		}
	}
	return nil, errUnauthorized
}

func (s *Server) bearer(raw string) (*principal, error) {
	c, err := s.tokens.verify(raw)
	if err != nil {
		return nil, err
	}
	if c.Role == roleAdmin {
		return &principal{admin: true, name: "admin-token:" + c.Subject, claims: c}, nil
	}
	j, err := jid.Parse(c.Subject)
	if err != nil {
		return nil, errInvalidToken
	}
	return &principal{user: j, name: j.String(), claims: c}, nil
}

// authenticateAdmin admits admin credentials only. Every Basic attempt is
// checked as a guess at the admin credential, so any name and any password
// get the same answers in the same order (401, then 429): the admin name is
// not told apart from another (it used to get 401, others 403). A valid
// user token is no guess and gets 403.
func (s *Server) authenticateAdmin(r *http.Request) (*principal, error) {
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Basic") {
		p, err := s.authenticate(r, fromHeader)
		if err != nil {
			return nil, err
		}
		if !p.admin {
			return nil, errForbidden
		}
		return p, nil
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return nil, errUnauthorized.wrap("malformed Basic credentials")
	}
	err := s.checkGuess(r, adminCredential, func() bool {
		// Both compared, in constant time, before either is looked at.
		nameOK, passOK := s.isAdminName(user), s.adminPasswordOK(pass)
		return nameOK && passOK
	})
	if err != nil {
		return nil, err
	}
	return &principal{admin: true, name: "admin:" + user}, nil
}

func (s *Server) isAdminName(user string) bool {
	return s.cfg.AdminUser != "" && subtle.ConstantTimeCompare([]byte(user), []byte(s.cfg.AdminUser)) == 1
}

func (s *Server) adminPasswordOK(pass string) bool {
	return s.cfg.AdminPassword != "" && subtle.ConstantTimeCompare([]byte(pass), []byte(s.cfg.AdminPassword)) == 1
}

// resolveStream finds the stream a stream-scoped request acts on: the
// {streamid} path segment, else the token's stream (or, for Basic, the
// user's newest stream). Admins may act on any stream but must name it.
// Someone else's stream is reported exactly like a missing one, so stream
// ids cannot be probed.
func (s *Server) resolveStream(p *principal, id string) (Stream, error) {
	if p.admin {
		if id == "" {
			return nil, errBadRequest.wrap("admins must name the stream: /chat/{streamid}/...")
		}
		return s.streams.Stream(id)
	}
	if id == "" {
		if p.claims != nil {
			id = p.claims.SID
		} else {
			for _, st := range s.streams.StreamsOf(p.user) {
				if st.CheckPassword(p.password) {
					return st, nil
				}
			}
			return nil, errBadCredentials
		}
	}
	st, err := s.streams.Stream(id)
	if err != nil || !st.User().Equal(p.user) {
		return nil, errStreamNotFound
	}
	if p.claims == nil && !st.CheckPassword(p.password) {
		return nil, errBadCredentials
	}
	return st, nil
}

// verifyBasicUser checks a Basic user's password against the user's live
// streams, under the same failed-guess limits as logins: every route that
// takes a password must throttle guessing, not only login.
func (s *Server) verifyBasicUser(r *http.Request, p *principal) error {
	if p.admin || p.claims != nil {
		return nil
	}
	return s.checkGuess(r, p.user.String(), func() bool { return s.basicValid(p) })
}

// Password guessing is throttled three ways (issue 22): per (name, client
// address) strictly, so one client gets a few tries; per address over all
// names, so one client cannot sweep many names; and per name loosely, so a
// name under attack from many addresses slows down without ever refusing a
// client that has not failed itself: a strict per-name bucket let anyone
// lock anyone out, the admin included, with five wrong guesses.
const (
	// loginNameFactor is how many times the pair budget one name may fail
	// per minute, over every address, before its failing clients wait.
	loginNameFactor = 10
	// nameUnderAttackDelay is what a clean client pays while its name's
	// loose budget is spent: a slower answer, never a refusal.
	nameUnderAttackDelay = time.Second
	// adminCredential names the admin Basic credential in the buckets: every
	// Basic attempt on an admin route is a guess at it, whatever the name.
	adminCredential = "\x00admin"
)

// guessKeys are the buckets one password attempt spends from.
type guessKeys struct{ pair, addr, name string }

func (s *Server) guessKeys(r *http.Request, name string) guessKeys {
	addr := addressKey(s.clientIP(r))
	return guessKeys{pair: name + "\x00" + addr, addr: addr, name: name}
}

// addressKey is the client's bucket: an IPv4 address, or the /64 of an IPv6
// one (a single host is routinely given a whole /64).
func addressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is6() || a.Is4In6() {
		return ip
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// checkGuess verifies one password attempt for name under the limits:
// 429 with Retry-After while the client or its address is over budget,
// errBadCredentials (counted) when ok reports false.
func (s *Server) checkGuess(r *http.Request, name string, ok func() bool) error {
	k := s.guessKeys(r, name)
	if err := s.guessAllowed(r, k); err != nil {
		return err
	}
	if !ok() {
		s.guessFailed(k)
		return errBadCredentials
	}
	return nil
}

// guessAllowed says whether the client may try a password for k now,
// slowing a clean client down while k's name is under attack.
func (s *Server) guessAllowed(r *http.Request, k guessKeys) error {
	if wait := max(s.failedByPair.Wait(k.pair), s.failedByIP.Wait(k.addr)); wait > 0 {
		return tooMany(errLoginRateLimited, wait)
	}
	if wait := s.failedByName.Wait(k.name); wait > 0 {
		if !s.failedByPair.Untouched(k.pair) {
			return tooMany(errLoginRateLimited, wait)
		}
		return sleepCtx(r.Context(), min(wait, nameUnderAttackDelay))
	}
	return nil
}

func (s *Server) guessFailed(k guessKeys) {
	s.failedByPair.Take(k.pair)
	s.failedByIP.Take(k.addr)
	s.failedByName.Take(k.name)
}

// sleepCtx waits d or until ctx ends (the client went away).
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// basicValid reports whether Basic credentials match any live stream of the
// user (the only password knowledge the gateway has).
func (s *Server) basicValid(p *principal) bool {
	for _, st := range s.streams.StreamsOf(p.user) {
		if st.CheckPassword(p.password) {
			return true
		}
	}
	return false
}
