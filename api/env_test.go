package api

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/xmppgw/xmppgw/gateway"
	"github.com/xmppgw/xmppgw/internal/cluster"
	"github.com/xmppgw/xmppgw/internal/testxmpp"
	"github.com/xmppgw/xmppgw/sse"
)

// sharedXMPP is one real XMPP server (Prosody, or ejabberd with
// XMPPGW_TEST_XMPP=ejabberd) for the tests that do not restart it.
var sharedXMPP *testxmpp.Server

func TestMain(m *testing.M) {
	srv, err := testxmpp.StartForMain(testxmpp.Options{JWTSecret: string(xmppTokenSecret),
		Users: map[string]string{notifyAccount: "unused-password-for-notify"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "api integration tests on %s %s\n", srv.Kind, srv.Version)
	sharedXMPP = srv
	code := m.Run()
	_ = srv.Stop()
	if code == 0 {
		// go-xmpp's Close arms a 10 s timer goroutine that closes the socket
		// whatever happens; it ends by itself and holds nothing of ours.
		if err := goleak.Find(goleak.IgnoreTopFunction("github.com/xmppo/go-xmpp.(*Client).Close.func1")); err != nil {
			fmt.Fprintf(os.Stderr, "goroutine leak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testEnv is a real gateway (manager + broker + router) over httptest,
// talking to a real Prosody.
type testEnv struct {
	t      *testing.T
	xmpp   *testxmpp.Server
	mgr    *gateway.Manager
	broker *sse.Broker
	srv    *Server
	http   *httptest.Server
	logs   *syncBuffer
}

type envOptions struct {
	xmpp           *testxmpp.Server
	replay         int
	idle           time.Duration
	tokenTTL       time.Duration
	tls            gateway.TLSMode
	loginLimit     time.Duration
	addr           string
	maxSubscribers int
	api            Config // fields to override; JWTSecret and CORS are set by newEnv
	gateway        gateway.Config
	// clusterEvents wires the node as cmd/xmppgw does in cluster mode: the
	// registry, events published to Redis and a relay into the broker.
	clusterEvents *cluster.Cluster
}

var (
	testSecret      = []byte("test-secret-0123456789-abcdefghijklmnop")
	xmppTokenSecret = []byte("xmpp-token-secret-0123456789-abcdefghij")
)

// Admin credentials and the notification account every test env has.
const (
	testAdminUser     = "ops"
	testAdminPassword = "admin-password-0123"
	notifyAccount     = "notifier"
)

func newEnv(t *testing.T, o envOptions) *testEnv {
	t.Helper()
	if o.xmpp == nil {
		o.xmpp = sharedXMPP
	}
	if o.tls == "" {
		o.tls = gateway.TLSNone
	}
	if o.addr == "" {
		o.addr = o.xmpp.Addr
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := []sse.Option{sse.WithHeartbeat(time.Second), sse.WithLogger(log)}
	if o.replay > 0 {
		opts = append(opts, sse.WithReplaySize(o.replay))
	}
	if o.maxSubscribers > 0 {
		opts = append(opts, sse.WithMaxSubscribers(o.maxSubscribers))
	}
	broker := sse.NewBroker(opts...)
	var tlsConfig *tls.Config
	if o.tls != gateway.TLSNone {
		pem, err := os.ReadFile(o.xmpp.CertFile)
		require.NoError(t, err)
		pool := x509.NewCertPool()
		require.True(t, pool.AppendCertsFromPEM(pem))
		tlsConfig = &tls.Config{RootCAs: pool, ServerName: o.xmpp.Domain, MinVersion: tls.VersionTLS12}
	}
	gc := o.gateway
	gc.Addr, gc.Domain, gc.TLS, gc.TLSConfig = o.addr, o.xmpp.Domain, o.tls, tlsConfig
	if o.xmpp.JWTSecret != "" {
		gc.TokenSecret, gc.ServiceAccount = []byte(o.xmpp.JWTSecret), notifyAccount
	}
	gc.IdleTimeout, gc.LoginTimeout = o.idle, o.loginLimit
	if gc.ReconnectMin == 0 {
		gc.ReconnectMin, gc.ReconnectMax = 100*time.Millisecond, time.Second
	}
	var pub gateway.Publisher = broker
	ac := o.api
	stopEvents := func() {}
	if c := o.clusterEvents; c != nil {
		reg := c.NewGatewayRegistry(cluster.Caps{PerUser: 10, Total: 1000}, log)
		hub := c.NewHub()
		events := c.NewEventPublisher(reg, hub, log)
		relay := c.NewRelay(hub, broker, 200*time.Millisecond, log)
		gc.Registry, pub = reg, events
		ac.Relay, ac.ClusterStream = relay, c.Get
		stopEvents = func() {
			relay.Close()
			events.Close()
			_ = hub.Close()
		}
	}
	mgr, err := gateway.NewManager(gc, pub, log)
	require.NoError(t, err)
	if events, ok := pub.(*cluster.EventPublisher); ok {
		events.Fenced = mgr.Yield // as cmd/xmppgw wires it
	}
	ac.JWTSecret, ac.TokenTTL, ac.CORSOrigins = testSecret, o.tokenTTL, []string{"http://app.example"}
	ac.AdminUser, ac.AdminPassword = testAdminUser, testAdminPassword
	srv := NewServer(ac, ManagerStreams(mgr), broker, log)
	hs := httptest.NewServer(srv.Routes())
	e := &testEnv{t: t, xmpp: o.xmpp, mgr: mgr, broker: broker, srv: srv, http: hs, logs: logs}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		require.NoError(t, mgr.Close(ctx))
		stopEvents()
		broker.Close()
		hs.Close()
	})
	return e
}

// onEjabberd reports whether the tests run on ejabberd, for the few
// assertions where ejabberd's documented behaviour differs from Prosody's.
func (e *testEnv) onEjabberd() bool { return e.xmpp.Kind == testxmpp.Ejabberd }

var userSeq atomic.Int64

// newUser registers a fresh account so parallel tests never see each
// other's traffic; it returns the username and password.
func (e *testEnv) newUser(prefix string) (string, string) {
	e.t.Helper()
	name := fmt.Sprintf("%s%d-%d", prefix, os.Getpid()%1000, userSeq.Add(1))
	pass := "pw-" + name + "-\"q\"&<x>"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(e.t, e.xmpp.Register(ctx, name, pass))
	return name, pass
}

type session struct {
	LoginResponse
	user, pass string
}

// login logs a user in with a JSON body and requires success.
func (e *testEnv) login(user, pass string) session {
	e.t.Helper()
	res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+user+"/login", "", jsonBody(map[string]string{"password": pass}), "application/json")
	require.Equal(e.t, http.StatusOK, res.StatusCode, body)
	var lr LoginResponse
	require.NoError(e.t, json.Unmarshal([]byte(body), &lr))
	return session{LoginResponse: lr, user: user, pass: pass}
}

// do sends a request with an optional bearer token and returns the body.
func (e *testEnv) do(method, path, token string, body io.Reader, contentType string) (*http.Response, string) {
	e.t.Helper()
	var h http.Header
	if token != "" {
		h = bearerHeader(token)
	}
	return e.doH(method, path, h, body, contentType)
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return strings.NewReader(string(b))
}

// requireError asserts the one error shape and the status.
func requireError(t *testing.T, res *http.Response, body string, status int) ErrorResponse {
	t.Helper()
	require.Equal(t, status, res.StatusCode, body)
	require.Equal(t, "application/json; charset=utf-8", res.Header.Get("Content-Type"))
	var er ErrorResponse
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&er), body)
	require.Equal(t, status, er.HTTP)
	require.Equal(t, status, er.Code/100)
	require.NotEmpty(t, er.Error)
	require.NotEmpty(t, er.RequestID)
	return er
}

// sseEvent is one parsed event of a test SSE connection.
type sseEvent struct {
	ID   string
	Data string
}

func (ev sseEvent) decode(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(ev.Data), &m), ev.Data)
	return m
}

// sseConn is a minimal EventSource: it reads one SSE response into a
// channel from a goroutine that ends with the response.
type sseConn struct {
	res    *http.Response
	events chan sseEvent
	done   chan struct{}
	cancel context.CancelFunc
}

func (e *testEnv) subscribe(path string, header http.Header) *sseConn {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.http.URL+path, nil)
	require.NoError(e.t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := e.http.Client().Do(req)
	require.NoError(e.t, err)
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		cancel()
		e.t.Fatalf("subscribe %s: %d %s", strings.SplitN(path, "?", 2)[0], res.StatusCode, b)
	}
	c := &sseConn{res: res, events: make(chan sseEvent, 4096), done: make(chan struct{}), cancel: cancel}
	go c.read()
	e.t.Cleanup(c.close)
	return c
}

func (c *sseConn) read() {
	defer close(c.done)
	defer c.res.Body.Close()
	sc := bufio.NewScanner(c.res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var ev sseEvent
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != nil {
				ev.Data = strings.Join(data, "\n")
				c.events <- ev
			}
			ev, data = sseEvent{}, nil
		case strings.HasPrefix(line, "id: "):
			ev.ID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		}
	}
}

func (c *sseConn) close() {
	c.cancel()
	<-c.done
}

// next returns the next event matching keep, failing after timeout.
func (c *sseConn) next(t *testing.T, keep func(map[string]any) bool) (sseEvent, map[string]any) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-c.events:
			m := ev.decode(t)
			if keep == nil || keep(m) {
				return ev, m
			}
		case <-c.done:
			select {
			case ev := <-c.events:
				m := ev.decode(t)
				if keep == nil || keep(m) {
					return ev, m
				}
				continue
			default:
			}
			t.Fatal("event stream ended while waiting for an event")
		case <-timeout:
			t.Fatal("timed out waiting for an event")
		}
	}
}

// waitEnd asserts the server ends the event stream.
// nextEach waits until every predicate has matched an event, in whatever
// order the events arrive (events from different XMPP senders may overtake
// each other), and returns the matches in the predicates' order. Events
// matching none are skipped, as in next.
func (c *sseConn) nextEach(t *testing.T, keeps ...func(map[string]any) bool) []map[string]any {
	t.Helper()
	got := make([]map[string]any, len(keeps))
	for missing := len(keeps); missing > 0; {
		_, m := c.next(t, func(m map[string]any) bool {
			for i, keep := range keeps {
				if got[i] == nil && keep(m) {
					return true
				}
			}
			return false
		})
		for i, keep := range keeps {
			if got[i] == nil && keep(m) {
				got[i] = m
				missing--
				break
			}
		}
	}
	return got
}

func (c *sseConn) waitEnd(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(within):
		t.Fatalf("event stream still open after %s", within)
	}
}

func ofType(typ string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["type"] == typ }
}

// syncBuffer collects logs from concurrent goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func bearerHeader(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// withoutKeys drops keys whose values are server-assigned.
func withoutKeys(m map[string]any, keys ...string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

func gatewayLimits(perUser int) gateway.Config {
	return gateway.Config{MaxStreamsPerUser: perUser}
}

// xmppForTest is an XMPP server of the test's own (for tests that restart
// it), of the selected kind and with token logins like the shared one.
func xmppForTest(t *testing.T) *testxmpp.Server {
	return testxmpp.ForTest(t, testxmpp.Options{JWTSecret: string(xmppTokenSecret)})
}

// killAndRestart crashes the XMPP server and starts it again on the same port.
func killAndRestart(t *testing.T, xs *testxmpp.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, xs.Kill())
	require.NoError(t, xs.Restart(ctx))
}
