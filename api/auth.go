package api

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/gateway"
)

// tokenClaims are the claims of a gateway token: sub is the user's bare
// JID, sid the stream it was issued for.
type tokenClaims struct {
	SID string `json:"sid"`
	jwt.RegisteredClaims
}

// tokens issues and verifies HS256 tokens and remembers revoked ones until
// they would have expired anyway.
type tokens struct {
	secret []byte
	issuer string
	ttl    time.Duration
	now    func() time.Time

	mu      sync.Mutex
	revoked map[string]time.Time // jti → exp
}

func newTokens(secret []byte, issuer string, ttl time.Duration) *tokens {
	return &tokens{secret: secret, issuer: issuer, ttl: ttl, now: time.Now, revoked: map[string]time.Time{}}
}

// issue mints a token for user's stream sid.
func (t *tokens) issue(user jid.JID, sid string) (string, time.Time, error) {
	now := t.now()
	exp := now.Add(t.ttl).Truncate(time.Second)
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	c := tokenClaims{SID: sid, RegisteredClaims: jwt.RegisteredClaims{
		Subject: user.String(), Issuer: t.issuer, IssuedAt: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp), ID: base64.RawURLEncoding.EncodeToString(jti)}}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.secret)
	return signed, exp, err
}

// verify checks signature, algorithm (never taken from the token header),
// issuer, expiry and revocation.
func (t *tokens) verify(raw string) (*tokenClaims, error) {
	c := &tokenClaims{}
	_, err := jwt.ParseWithClaims(raw, c, func(*jwt.Token) (any, error) { return t.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithExpirationRequired(),
		jwt.WithIssuer(t.issuer), jwt.WithTimeFunc(t.now))
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, errTokenExpired
	case err != nil:
		return nil, errInvalidToken
	case c.Subject == "" || c.SID == "" || c.ID == "":
		return nil, errInvalidToken.wrap("missing claims")
	}
	t.mu.Lock()
	_, revoked := t.revoked[c.ID]
	t.mu.Unlock()
	if revoked {
		return nil, errTokenRevoked
	}
	return c, nil
}

// revoke denies a token until its expiry; expired entries are pruned here,
// which keeps the list bounded by the number of live tokens.
func (t *tokens) revoke(c *tokenClaims) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for jti, exp := range t.revoked {
		if now.After(exp) {
			delete(t.revoked, jti)
		}
	}
	if c.ExpiresAt != nil {
		t.revoked[c.ID] = c.ExpiresAt.Time
	}
}

// principal is who a request authenticated as.
type principal struct {
	user   jid.JID
	claims *tokenClaims // nil for HTTP Basic
	// password is set for HTTP Basic; checked against a stream before use.
	password string
}

// authenticate reads the Authorization header (or, where allowQuery, the
// token query parameter EventSource needs since it cannot send headers).
func (s *Server) authenticate(r *http.Request, allowQuery bool) (*principal, error) {
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
		j, err := gateway.UserJID(user, s.streams.Domain())
		if err != nil {
			return nil, errBadCredentials
		}
		return &principal{user: j, password: pass}, nil
	case h != "":
		return nil, errUnauthorized.wrap("unsupported Authorization scheme")
	case allowQuery && r.URL.Query().Get("token") != "":
		return s.bearer(r.URL.Query().Get("token"))
	}
	return nil, errUnauthorized
}

func (s *Server) bearer(raw string) (*principal, error) {
	c, err := s.tokens.verify(raw)
	if err != nil {
		return nil, err
	}
	j, err := jid.Parse(c.Subject)
	if err != nil {
		return nil, errInvalidToken
	}
	return &principal{user: j, claims: c}, nil
}

// resolveStream finds the stream a stream-scoped request acts on: the
// {streamid} path segment, else the token's stream (or, for Basic, the
// user's newest stream). Someone else's stream is reported exactly like a
// missing one, so stream ids cannot be probed.
func (s *Server) resolveStream(p *principal, id string) (*gateway.Stream, error) {
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
		if p.claims == nil {
			// Basic credentials cannot be checked without one of the user's streams.
			if !s.basicValid(p) {
				return nil, errBadCredentials
			}
		}
		return nil, errStreamNotFound
	}
	if p.claims == nil && !st.CheckPassword(p.password) {
		return nil, errBadCredentials
	}
	return st, nil
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
