package prosody

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
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
