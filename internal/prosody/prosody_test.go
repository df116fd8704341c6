package prosody

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	prosodyauth "github.com/xmppgw/xmppgw/deploy/prosody"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// readUntil reads from conn until the data read so far contains one of
// the markers and returns it all.
func readUntil(t *testing.T, conn net.Conn, markers ...string) string {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
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

// openStream connects to s and returns the connection and the stream features.
func openStream(t *testing.T, s *Server) (net.Conn, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.Addr, 2*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	t.Cleanup(func() { closeStream(conn) })
	_, err = io.WriteString(conn, streamHeader(s.Domain))
	require.NoError(t, err)
	return conn, readUntil(t, conn, "</stream:features>")
}

// plainAuth authenticates with SASL PLAIN over plaintext TCP and returns the
// server's answer (<success .../> or <failure ...>...</failure>).
func plainAuth(t *testing.T, s *Server, user, password string) string {
	t.Helper()
	conn, _ := openStream(t, s)
	payload := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	_, err := io.WriteString(conn, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+payload+"</auth>")
	require.NoError(t, err)
	reply := readUntil(t, conn, "<success", "</failure>", "<failure/>")
	closeStream(conn)
	return reply
}

func TestStreamFeaturesAndAuth(t *testing.T) {
	s := ForTest(t, Options{Users: map[string]string{"alice": "s3cret", "bob": "p'w\"<&>"}})
	assert.Equal(t, DefaultDomain, s.Domain)
	assert.Equal(t, "conference.localhost", s.MUCDomain)
	assert.Equal(t, "pubsub.localhost", s.PubSubDomain)
	assert.True(t, strings.HasPrefix(s.Addr, "127.0.0.1:"), s.Addr)
	assert.Equal(t, "alice@localhost", s.JID("alice"))

	_, features := openStream(t, s)
	assert.Contains(t, features, "<mechanisms")
	assert.Contains(t, features, "<starttls")
	assert.Contains(t, features, "<mechanism>PLAIN</mechanism>")

	assert.Contains(t, plainAuth(t, s, "alice", "s3cret"), "<success")
	assert.Contains(t, plainAuth(t, s, "bob", "p'w\"<&>"), "<success")
	assert.Contains(t, plainAuth(t, s, "alice", "wrong"), "<failure")
	assert.Contains(t, plainAuth(t, s, "nobody", "s3cret"), "<failure")

	assert.Contains(t, s.LogTail(100), "Activated service 'c2s'")
	assert.Empty(t, s.JWTSecret)
	cfg, err := os.ReadFile(s.ConfigFile)
	require.NoError(t, err)
	assert.Contains(t, string(cfg), `authentication = "internal_hashed"`, "no JWTSecret: stock auth")
	assert.NotContains(t, string(cfg), "plugin_paths")
	logData, err := os.ReadFile(s.LogFile)
	require.NoError(t, err)
	assert.Contains(t, string(logData), "Hello and welcome to Prosody")
}

func TestStartTLSWithCertFile(t *testing.T) {
	s := ForTest(t, Options{})
	conn, _ := openStream(t, s)
	_, err := io.WriteString(conn, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	require.NoError(t, err)
	readUntil(t, conn, "<proceed")

	pemData, err := os.ReadFile(s.CertFile)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(pemData))
	tc := tls.Client(conn, &tls.Config{RootCAs: roots, ServerName: s.Domain, MinVersion: tls.VersionTLS12})
	require.NoError(t, tc.SetDeadline(time.Now().Add(5*time.Second)))
	require.NoError(t, tc.Handshake())
	_, err = io.WriteString(tc, streamHeader(s.Domain))
	require.NoError(t, err)
	features := readUntil(t, tc, "</stream:features>")
	assert.Contains(t, features, "<mechanisms")
	assert.NotContains(t, features, "<starttls")
	closeStream(tc)
}

func TestKillRestartKeepsData(t *testing.T) {
	s := ForTest(t, Options{Users: map[string]string{"alice": "pw1"}})
	addr := s.Addr
	require.Contains(t, plainAuth(t, s, "alice", "pw1"), "<success")

	// Registering works while running.
	require.NoError(t, s.Register(t.Context(), "carol", "pw3"))
	require.Contains(t, plainAuth(t, s, "carol", "pw3"), "<success")

	require.NoError(t, s.Kill())
	assert.False(t, s.Running())
	_, err := net.DialTimeout("tcp", addr, time.Second)
	require.Error(t, err, "port should be closed after Kill")
	require.NoError(t, s.Kill(), "Kill twice")

	// ... and while stopped.
	require.NoError(t, s.Register(t.Context(), "dave", "pw4"))

	require.NoError(t, s.Restart(t.Context()))
	assert.True(t, s.Running())
	assert.Equal(t, addr, s.Addr)
	assert.Contains(t, plainAuth(t, s, "alice", "pw1"), "<success")
	assert.Contains(t, plainAuth(t, s, "carol", "pw3"), "<success")
	assert.Contains(t, plainAuth(t, s, "dave", "pw4"), "<success")
	assert.Contains(t, plainAuth(t, s, "alice", "pw3"), "<failure")

	// A graceful Stop of a ForTest server (Dir from t.TempDir) keeps the
	// data too, and Restart on a running server restarts it.
	require.NoError(t, s.Stop())
	require.NoError(t, s.Restart(t.Context()))
	require.NoError(t, s.Restart(t.Context()))
	assert.Equal(t, addr, s.Addr)
	assert.Contains(t, plainAuth(t, s, "dave", "pw4"), "<success")
}

func TestStopIsIdempotentAndRemovesTempDir(t *testing.T) {
	s, err := Start(t.Context(), Options{})
	require.NoError(t, err)
	_, err = os.Stat(s.ConfigFile)
	require.NoError(t, err)

	start := time.Now()
	require.NoError(t, s.Stop())
	assert.Less(t, time.Since(start), 3*time.Second)
	require.NoError(t, s.Stop())
	_, err = os.Stat(s.Dir)
	assert.True(t, errors.Is(err, os.ErrNotExist), "dir %s should be gone: %v", s.Dir, err)
	assert.False(t, s.Running())
	require.Error(t, s.Restart(t.Context()))
	require.Error(t, s.Register(t.Context(), "x", "y"))
	_, err = net.DialTimeout("tcp", s.Addr, time.Second)
	require.Error(t, err)
}

func TestOwnDirAndLogWriter(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "prosody")
	var log strings.Builder
	w := &lockedWriter{w: &log}
	s, err := Start(t.Context(), Options{Dir: dir, Domain: "example.test", Log: w, Users: map[string]string{"u": "p"}})
	require.NoError(t, err)
	assert.Equal(t, "conference.example.test", s.MUCDomain)
	assert.Empty(t, s.LogFile)
	assert.Contains(t, plainAuth(t, s, "u", "p"), "<success")
	require.NoError(t, s.Stop())
	_, err = os.Stat(filepath.Join(dir, "data"))
	require.NoError(t, err, "a caller's Dir is kept")
	assert.Contains(t, w.String(), "Hello and welcome to Prosody")
	_, err = os.Stat(filepath.Join(dir, "prosody.log"))
	assert.True(t, errors.Is(err, os.ErrNotExist))

	// A second server on the same Dir (as `make run` does across runs)
	// keeps the certificate and the accounts.
	cert1, err := os.ReadFile(s.CertFile)
	require.NoError(t, err)
	s2, err := Start(t.Context(), Options{Dir: dir, Domain: "example.test", Log: io.Discard})
	require.NoError(t, err)
	defer func() { require.NoError(t, s2.Stop()) }()
	cert2, err := os.ReadFile(s2.CertFile)
	require.NoError(t, err)
	assert.Equal(t, cert1, cert2)
	assert.Contains(t, plainAuth(t, s2, "u", "p"), "<success")
}

func TestStartErrors(t *testing.T) {
	_, err := Start(t.Context(), Options{Domain: "Bad Domain"})
	require.Error(t, err)

	// The port is taken: Start fails fast instead of probing someone else.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	_, err = Start(t.Context(), Options{Port: l.Addr().(*net.TCPAddr).Port})
	require.ErrorIs(t, err, errPortInUse)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = Start(ctx, Options{})
	require.ErrorIs(t, err, context.Canceled)

	t.Setenv("PATH", t.TempDir())
	_, err = Start(t.Context(), Options{})
	require.ErrorIs(t, err, ErrNotInstalled)
}

func TestLuaString(t *testing.T) {
	for in, want := range map[string]string{
		"":                `""`,
		"/tmp/a b":        `"/tmp/a b"`,
		`a"b\c`:           `"a\"b\\c"`,
		"x\ny\x00z":       `"x\010y\000z"`,
		"]]..os.exit()--": `"]]..os.exit()--"`,
		"é1":              `"\195\1691"`,
	} {
		assert.Equal(t, want, luaString(in), "luaString(%q)", in)
	}
	assert.Equal(t, `{ "a", "b" }`, luaStrings([]string{"a", "b"}))
}

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.String()
}

// testJWTSecret is long enough for mod_auth_xmppgw_jwt (≥ 32 bytes) and
// contains characters the Lua escaper has to handle.
const testJWTSecret = "test-secret \"with\" \\quotes\\ and é, 32+ bytes long"

// signToken signs claims with HS256 the way the gateway does (golang-jwt).
func signToken(t *testing.T, secret string, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	require.NoError(t, err)
	return tok
}

// loginClaims are the gateway's claims for jid, expiring after ttl.
func loginClaims(jid string, ttl time.Duration) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"jid": jid, "iat": now.Unix(), "exp": now.Add(ttl).Unix()}
}

var saslDataRE = regexp.MustCompile(`<(challenge|success)[^>]*>([^<]*)</`)

// saslData returns the base64-decoded payload of a <challenge> or <success>.
func saslData(t *testing.T, reply string) string {
	t.Helper()
	m := saslDataRE.FindStringSubmatch(reply)
	require.NotNil(t, m, "no SASL data in %q", reply)
	data, err := base64.StdEncoding.DecodeString(m[2])
	require.NoError(t, err)
	return string(data)
}

func hmacSHA1(key []byte, msg string) []byte {
	h := hmac.New(sha1.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// scramAuth runs a SCRAM-SHA-1 exchange (RFC 5802, no channel binding) for
// an ASCII user and password and returns the server's last answer; on
// <success> it has also checked the server signature.
func scramAuth(t *testing.T, s *Server, user, password string) string {
	t.Helper()
	conn, _ := openStream(t, s)
	defer closeStream(conn)
	send := func(elem, data string) {
		t.Helper()
		_, err := io.WriteString(conn, elem+base64.StdEncoding.EncodeToString([]byte(data))+"</"+strings.Fields(elem[1:])[0]+">")
		require.NoError(t, err)
	}
	clientFirstBare := "n=" + user + ",r=" + rand.Text()
	send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>", "n,,"+clientFirstBare)
	reply := readUntil(t, conn, "</challenge>", "</failure>", "<failure/>")
	if !strings.Contains(reply, "<challenge") {
		return reply
	}
	serverFirst := saslData(t, reply)
	var nonce, salt64 string
	var iter int
	for _, attr := range strings.Split(serverFirst, ",") {
		k, v, _ := strings.Cut(attr, "=")
		switch k {
		case "r":
			nonce = v
		case "s":
			salt64 = v
		case "i":
			_, err := fmt.Sscan(v, &iter)
			require.NoError(t, err)
		}
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	require.NoError(t, err)
	salted, err := pbkdf2.Key(sha1.New, password, salt, iter, sha1.Size)
	require.NoError(t, err)
	clientKey := hmacSHA1(salted, "Client Key")
	storedKey := sha1.Sum(clientKey)
	withoutProof := "c=biws,r=" + nonce
	authMessage := clientFirstBare + "," + serverFirst + "," + withoutProof
	proof := hmacSHA1(storedKey[:], authMessage)
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>", withoutProof+",p="+base64.StdEncoding.EncodeToString(proof))
	reply = readUntil(t, conn, "</success>", "<success/>", "</failure>", "<failure/>")
	if strings.Contains(reply, "<success") {
		serverSig := hmacSHA1(hmacSHA1(salted, "Server Key"), authMessage)
		assert.Equal(t, "v="+base64.StdEncoding.EncodeToString(serverSig), saslData(t, reply), "server signature")
	}
	return reply
}

func TestJWTLogin(t *testing.T) {
	s := ForTest(t, Options{JWTSecret: testJWTSecret, Users: map[string]string{"alice": "s3cret", "bob": "pw2"}})
	assert.Equal(t, testJWTSecret, s.JWTSecret)

	// The module is installed from the embedded copy and the secret stays private.
	installed, err := os.ReadFile(filepath.Join(s.Dir, "plugins", prosodyauth.FileName))
	require.NoError(t, err)
	assert.Equal(t, prosodyauth.Module, installed)
	cfg, err := os.ReadFile(s.ConfigFile)
	require.NoError(t, err)
	assert.Contains(t, string(cfg), `authentication = "xmppgw_jwt"`)
	assert.Contains(t, string(cfg), "xmppgw_jwt_secret = "+luaString(testJWTSecret))
	st, err := os.Stat(s.ConfigFile)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	_, features := openStream(t, s)
	assert.Contains(t, features, "<mechanism>PLAIN</mechanism>")
	assert.Contains(t, features, "<mechanism>SCRAM-SHA-1</mechanism>")

	alice := s.JID("alice")
	valid := signToken(t, testJWTSecret, loginClaims(alice, 5*time.Minute))
	assert.Contains(t, plainAuth(t, s, "alice", valid), "<success", "valid token")
	assert.Contains(t, plainAuth(t, s, "ALICE", valid), "<success", "the username is nodeprepped")
	assert.Contains(t, plainAuth(t, s, "alice", signToken(t, testJWTSecret, loginClaims(alice, 59*time.Minute))), "<success", "59 min lifetime")
	assert.Contains(t, plainAuth(t, s, "alice", signToken(t, testJWTSecret, loginClaims(alice, -10*time.Second))), "<success", "within clock skew")

	// Ordinary passwords still work over PLAIN and SCRAM; tokens never over SCRAM.
	assert.Contains(t, plainAuth(t, s, "alice", "s3cret"), "<success")
	assert.Contains(t, scramAuth(t, s, "alice", "s3cret"), "<success")
	assert.Contains(t, scramAuth(t, s, "alice", "wrong"), "<failure")
	assert.Contains(t, scramAuth(t, s, "alice", valid), "<failure")
	assert.Contains(t, plainAuth(t, s, "alice", "wrong"), "<failure")

	hs512, err := jwt.NewWithClaims(jwt.SigningMethodHS512, loginClaims(alice, time.Minute)).SignedString([]byte(testJWTSecret))
	require.NoError(t, err)
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, loginClaims(alice, time.Minute)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	require.NoError(t, err)
	noExp := jwt.MapClaims{"jid": alice, "iat": time.Now().Unix()}
	stringExp := jwt.MapClaims{"jid": alice, "exp": fmt.Sprint(time.Now().Add(time.Minute).Unix())}
	for _, c := range []struct {
		name, user, token, logged string
	}{
		{"expired", "alice", signToken(t, testJWTSecret, loginClaims(alice, -5*time.Minute)), "token expired"},
		{"another user's jid", "alice", signToken(t, testJWTSecret, loginClaims(s.JID("bob"), time.Minute)), "jid claim does not match"},
		{"bare username as jid", "alice", signToken(t, testJWTSecret, loginClaims("alice", time.Minute)), "jid claim does not match"},
		{"other secret", "alice", signToken(t, strings.Repeat("x", 40), loginClaims(alice, time.Minute)), "signature-mismatch"},
		{"alg none", "alice", none, ""}, // empty signature: not even token-shaped
		{"alg none, forged signature", "alice", none + "c2ln", "unsupported-algorithm"},
		{"alg HS512", "alice", hs512, "unsupported-algorithm"},
		{"exp 2 h ahead", "alice", signToken(t, testJWTSecret, loginClaims(alice, 2*time.Hour)), "exp is more than an hour ahead"},
		{"no exp", "alice", signToken(t, testJWTSecret, noExp), "exp claim missing"},
		{"exp not a number", "alice", signToken(t, testJWTSecret, stringExp), "exp claim missing"},
		{"unregistered user", "nobody", signToken(t, testJWTSecret, loginClaims(s.JID("nobody"), time.Minute)), "no such account"},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.Contains(t, plainAuth(t, s, c.user, c.token), "<failure")
			if c.logged != "" {
				require.Eventually(t, func() bool {
					return strings.Contains(s.LogTail(200), "rejected login token for "+c.user+": "+c.logged)
				}, 2*time.Second, 10*time.Millisecond)
			}
		})
	}

	// Accounts created while running (prosodyctl) work both ways.
	require.NoError(t, s.Register(t.Context(), "dave", "pw4"))
	assert.Contains(t, plainAuth(t, s, "dave", "pw4"), "<success")
	assert.Contains(t, scramAuth(t, s, "dave", "pw4"), "<success")
	assert.Contains(t, plainAuth(t, s, "dave", signToken(t, testJWTSecret, loginClaims(s.JID("dave"), time.Minute))), "<success")

	// Neither tokens nor passwords reach the log.
	logData, err := os.ReadFile(s.LogFile)
	require.NoError(t, err)
	for _, secret := range []string{valid, none, hs512, "s3cret", "pw4", testJWTSecret} {
		assert.NotContains(t, string(logData), secret)
	}
}

func TestJWTSecretConfig(t *testing.T) {
	t.Run("too short for Start", func(t *testing.T) {
		_, err := Start(t.Context(), Options{Dir: t.TempDir(), JWTSecret: "short"})
		require.ErrorContains(t, err, "at least 32")
	})

	s := ForTest(t, Options{JWTSecret: testJWTSecret, Users: map[string]string{"alice": "s3cret"}})
	cfg, err := os.ReadFile(s.ConfigFile)
	require.NoError(t, err)
	secretLine := "xmppgw_jwt_secret = " + luaString(testJWTSecret) + "\n"
	require.Contains(t, string(cfg), secretLine)
	// Restart reuses the config file as it is, so rewriting it tests what
	// the module does with hand-written configs.
	restartWith := func(t *testing.T, line string) error {
		t.Helper()
		require.NoError(t, s.Kill())
		require.NoError(t, os.WriteFile(s.ConfigFile, []byte(strings.Replace(string(cfg), secretLine, line, 1)), 0o600))
		start := time.Now()
		err := s.Restart(t.Context())
		assert.Less(t, time.Since(start), 5*time.Second, "a failed start is detected from the log, not by timeout")
		return err
	}

	t.Run("no secret", func(t *testing.T) {
		err := restartWith(t, "")
		require.ErrorContains(t, err, "authentication module failed to load")
		require.ErrorContains(t, err, "no secret configured")
		// prosodyctl refuses too.
		require.ErrorContains(t, s.Register(t.Context(), "eve", "pw"), "no secret configured")
	})
	t.Run("short secret", func(t *testing.T) {
		err := restartWith(t, `xmppgw_jwt_secret = "0123456789"`+"\n")
		require.ErrorContains(t, err, "the xmppgw_jwt secret is 10 bytes; at least 32 are required")
	})
	t.Run("secret file", func(t *testing.T) {
		fileSecret := strings.Repeat("f", 48)
		require.NoError(t, os.WriteFile(filepath.Join(s.Dir, "jwt.secret"), []byte("\n  "+fileSecret+" \n"), 0o600))
		// Relative to the config file's directory.
		require.NoError(t, restartWith(t, `xmppgw_jwt_secret_file = "jwt.secret"`+"\n"))
		alice := s.JID("alice")
		assert.Contains(t, plainAuth(t, s, "alice", signToken(t, fileSecret, loginClaims(alice, time.Minute))), "<success")
		assert.Contains(t, plainAuth(t, s, "alice", signToken(t, testJWTSecret, loginClaims(alice, time.Minute))), "<failure")
		assert.Contains(t, plainAuth(t, s, "alice", "s3cret"), "<success")
	})
	t.Run("secret and secret file", func(t *testing.T) {
		err := restartWith(t, secretLine+`xmppgw_jwt_secret_file = "jwt.secret"`+"\n")
		require.ErrorContains(t, err, "set only one of xmppgw_jwt_secret and xmppgw_jwt_secret_file")
	})
	t.Run("missing secret file", func(t *testing.T) {
		err := restartWith(t, `xmppgw_jwt_secret_file = "nonexistent.secret"`+"\n")
		require.ErrorContains(t, err, "cannot read xmppgw_jwt_secret_file")
	})
}
