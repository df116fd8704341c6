package gateway

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"mellium.im/xmpp/jid"
)

// DefaultXMPPTokenTTL is the lifetime of the token the gateway logs in with
// on a user's behalf: long enough for a slow login, short enough that a
// token seen on the wire is soon useless (the server module rejects tokens
// valid for more than an hour).
const DefaultXMPPTokenTTL = 5 * time.Minute

// credentials produce the SASL secret for each (re)login of a stream.
type credentials interface {
	// secret returns the password to present, fresh for every login.
	secret() (string, error)
	// mechanism forces a SASL mechanism, or "" for the best offered.
	mechanism() string
}

// passwordCredentials are a user's own password; SCRAM is preferred.
type passwordCredentials string

func (p passwordCredentials) secret() (string, error) { return string(p), nil }
func (passwordCredentials) mechanism() string         { return "" }

// tokenCredentials log in for a user without their password: an HS256 JWT
// {jid, exp, iat} signed with the secret the XMPP server's auth module
// shares (deploy/prosody/mod_auth_xmppgw_jwt.lua; ejabberd's native
// jwt auth_method), sent as the SASL PLAIN password (RFC 4616).
type tokenCredentials struct {
	user jid.JID
	key  []byte
	ttl  time.Duration
}

func (t tokenCredentials) secret() (string, error) {
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"jid": t.user.Bare().String(),
		"iat": now.Unix(),
		"exp": now.Add(t.ttl).Unix(),
	}).SignedString(t.key)
	if err != nil {
		return "", fmt.Errorf("sign XMPP login token: %w", err)
	}
	return tok, nil
}

// mechanism is PLAIN: the server must see the token itself, which SCRAM
// would hash away.
func (tokenCredentials) mechanism() string { return "PLAIN" }
