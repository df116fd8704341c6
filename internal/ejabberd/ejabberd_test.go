package ejabberd

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// plainLogin opens a stream to s and tries SASL PLAIN; it returns the
// mechanisms offered and whether the server answered <success/>.
func plainLogin(t *testing.T, s *Server, user, password string) ([]string, bool) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.Addr, 2*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = conn.Write([]byte("<?xml version='1.0'?><stream:stream to='" + s.Domain +
		"' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"))
	require.NoError(t, err)
	features := readUntil(t, conn, "</stream:features>")
	var mechs []string
	for _, part := range strings.Split(features, "<mechanism>")[1:] {
		mechs = append(mechs, strings.SplitN(part, "<", 2)[0])
	}
	auth := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	_, err = conn.Write([]byte("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + auth + "</auth>"))
	require.NoError(t, err)
	got := readUntil(t, conn, "<success", "<failure")
	return mechs, strings.Contains(got, "<success")
}

func readUntil(t *testing.T, conn net.Conn, markers ...string) string {
	t.Helper()
	var got strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		got.Write(buf[:n])
		for _, m := range markers {
			if strings.Contains(got.String(), m) {
				return got.String()
			}
		}
		require.NoError(t, err, "waiting for %q, got %q", markers, got.String())
	}
}

func token(t *testing.T, secret, jid string, exp time.Time) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"jid": jid, "exp": exp.Unix()}).SignedString([]byte(secret))
	require.NoError(t, err)
	return tok
}

const testSecret = "ejabberd-harness-secret-0123456789abcdef"

func TestStart_UsersPasswordsTokensRestart(t *testing.T) {
	s := ForTest(t, Options{JWTSecret: testSecret, Users: map[string]string{"alice": `pw "q" & <x>`}})
	require.Regexp(t, `^\d+\.\d+`, s.Version)
	require.Equal(t, "conference.localhost", s.MUCDomain)

	// The JWK holds the secret's bytes, base64url without padding.
	var k map[string]string
	b, err := os.ReadFile(s.jwkFile())
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &k))
	raw, err := base64.RawURLEncoding.DecodeString(k["k"])
	require.NoError(t, err)
	require.Equal(t, testSecret, string(raw))

	mechs, ok := plainLogin(t, s, "alice", `pw "q" & <x>`)
	require.True(t, ok)
	// ejabberd's documented behaviour with jwt among the auth methods:
	// PLAIN and X-OAUTH2, no SCRAM (docs/admin-login.md).
	require.ElementsMatch(t, []string{"PLAIN", "X-OAUTH2"}, mechs)
	_, ok = plainLogin(t, s, "alice", "wrong")
	require.False(t, ok)
	_, ok = plainLogin(t, s, "alice", token(t, testSecret, s.JID("alice"), time.Now().Add(time.Minute)))
	require.True(t, ok, "a token signed with the secret logs in")
	_, ok = plainLogin(t, s, "alice", token(t, "another-secret-0123456789abcdefghijkl", s.JID("alice"), time.Now().Add(time.Minute)))
	require.False(t, ok)
	_, ok = plainLogin(t, s, "alice", token(t, testSecret, s.JID("alice"), time.Now().Add(-time.Minute)))
	require.False(t, ok, "expired")

	// Register again resets the password.
	require.NoError(t, s.Register(t.Context(), "alice", "new-password"))
	_, ok = plainLogin(t, s, "alice", "new-password")
	require.True(t, ok)

	// A crash keeps the accounts (Mnesia replays its log) and the ports.
	addr := s.Addr
	require.NoError(t, s.Kill())
	require.False(t, s.Running())
	require.NoError(t, s.Restart(t.Context()))
	require.Equal(t, addr, s.Addr)
	_, ok = plainLogin(t, s, "alice", "new-password")
	require.True(t, ok)
}

func TestStart_WithoutJWTOffersSCRAM(t *testing.T) {
	s := ForTest(t, Options{Users: map[string]string{"bob": "pw"}})
	mechs, ok := plainLogin(t, s, "bob", "pw")
	require.True(t, ok)
	require.Contains(t, mechs, "SCRAM-SHA-1")
}
