package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/xmppgw/xmppgw/api"
	"github.com/xmppgw/xmppgw/internal/childproc"
	"github.com/xmppgw/xmppgw/internal/redistest"
	"github.com/xmppgw/xmppgw/internal/testxmpp"
)

// gatewayNode is one gateway process of a test cluster: this test binary
// re-run as the gateway (runAsGatewayEnv), configured by environment only.
type gatewayNode struct {
	t        *testing.T
	name     string
	public   string // host:port of the public listener
	internal string // host:port of the cluster listener
	env      map[string]string
	logs     *lockedBuffer
	proc     *childproc.Process
}

// testCluster is one Redis, one XMPP server (Prosody unless
// XMPPGW_TEST_XMPP says otherwise) and the nodes started on them.
type testCluster struct {
	t     *testing.T
	redis *redistest.Server
	xmpp  *testxmpp.Server
	base  map[string]string
}

func newTestCluster(t *testing.T, name string) *testCluster {
	t.Helper()
	return newTestClusterWith(t, name, testxmpp.Options{}, nil)
}

// newTestClusterWith is newTestCluster with XMPP server options, more
// environment for every node and, optionally, Redis options.
func newTestClusterWith(t *testing.T, name string, opts testxmpp.Options, env map[string]string, redisOpts ...redistest.Options) *testCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	xmpp, err := testxmpp.Start(ctx, opts)
	require.NoError(t, err, "the cluster tests need a real XMPP server: `make deps` installs Prosody")
	t.Cleanup(func() { _ = xmpp.Stop() })
	r := redistest.ForTest(t, redisOpts...)
	base := clusterEnv(r.URL, map[string]string{
		"XMPPGW_CLUSTER": name, "XMPPGW_XMPP_ADDR": xmpp.Addr, "XMPPGW_XMPP_DOMAIN": xmpp.Domain,
		"XMPPGW_XMPP_TLS": "none", "XMPPGW_LEASE_RENEW": "200ms", "XMPPGW_LEASE_TTL": "3s",
		"XMPPGW_LOG_DELAY": "0", "XMPPGW_LOG_LEVEL": "debug",
		"XMPPGW_ADMIN_USER": "ops", "XMPPGW_ADMIN_PASSWORD": "correct-horse-battery",
	})
	for k, v := range env {
		base[k] = v
	}
	return &testCluster{t: t, redis: r, xmpp: xmpp, base: base}
}

// start runs a node and waits until its /readyz is 200.
func (c *testCluster) start(name string, extra map[string]string) *gatewayNode {
	t := c.t
	t.Helper()
	n := &gatewayNode{t: t, name: name, public: freeAddr(t), internal: freeAddr(t), logs: &lockedBuffer{}, env: map[string]string{}}
	for k, v := range c.base {
		n.env[k] = v
	}
	for k, v := range extra {
		n.env[k] = v
	}
	for attempt := 1; ; attempt++ {
		n.env["XMPPGW_LISTEN"], n.env["XMPPGW_CLUSTER_LISTEN"] = n.public, n.internal
		// Another process may take a port between freeAddr and the node's
		// bind (tests of other packages run alongside): try new ones.
		if n.run(attempt < 3) {
			break
		}
		n.public, n.internal, n.logs = freeAddr(t), freeAddr(t), &lockedBuffer{}
	}
	t.Cleanup(func() { n.stop(true) })
	return n
}

// run starts the node's process and waits for /readyz; with retryBind, a
// node that exits because a port was taken reports false instead of
// failing the test.
func (n *gatewayNode) run(retryBind bool) bool {
	t := n.t
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{runAsGatewayEnv + "=1", "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range n.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = n.logs, n.logs
	proc, err := childproc.Start(cmd, nil)
	require.NoError(t, err)
	n.proc = proc
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get("http://" + n.public + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return true
			}
		}
		if n.proc.Exited() && retryBind && strings.Contains(n.logs.String(), "address already in use") {
			return false
		}
		if n.proc.Exited() || time.Now().After(deadline) {
			t.Fatalf("node %s not ready (exited: %v):\n%s", n.name, n.proc.Exited(), n.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the node: SIGTERM (graceful) or SIGKILL (a crash).
func (n *gatewayNode) stop(graceful bool) {
	if n.proc == nil || n.proc.Exited() {
		return
	}
	if err := n.proc.Stop(graceful, 25*time.Second); err != nil {
		n.t.Errorf("stopping node %s: %v\n%s", n.name, err, n.logs.String())
	}
}

func (n *gatewayNode) url(path string) string { return "http://" + n.public + path }

// do sends a request with optional JSON body and headers and returns the
// status and body.
func (n *gatewayNode) do(method, path string, body any, header http.Header) (int, string) {
	n.t.Helper()
	code, _, b := n.doHeader(method, path, body, header)
	return code, b
}

// doHeader is do returning the response headers too.
func (n *gatewayNode) doHeader(method, path string, body any, header http.Header) (int, http.Header, string) {
	n.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(n.t, err)
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(n.t.Context(), method, n.url(path), rd)
	require.NoError(n.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(n.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(n.t, err)
	return res.StatusCode, res.Header, string(b)
}

// login opens a stream for user on this node.
func (n *gatewayNode) login(user, password string) api.LoginResponse {
	n.t.Helper()
	code, body := n.do(http.MethodPost, "/restapi/v1/chat/"+user+"/login", map[string]string{"password": password}, nil)
	require.Equal(n.t, http.StatusOK, code, "login on %s: %s", n.name, body)
	var l api.LoginResponse
	require.NoError(n.t, json.Unmarshal([]byte(body), &l))
	require.NotEmpty(n.t, l.Token)
	return l
}

func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

// nodeName is the node id a process logged ("node" attribute of the
// cluster-mode warning).
func (n *gatewayNode) nodeName() string {
	n.t.Helper()
	var name string
	require.Eventually(n.t, func() bool {
		for _, line := range strings.Split(n.logs.String(), "\n") {
			var rec struct{ Node string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Node != "" {
				name = rec.Node
				return true
			}
		}
		return false
	}, 5*time.Second, 20*time.Millisecond)
	return name
}

func errorCode(t *testing.T, body string) int {
	t.Helper()
	var e struct{ Code int }
	require.NoError(t, json.Unmarshal([]byte(body), &e), body)
	return e.Code
}

// sseEvent is one event as an EventSource sees it.
type sseEvent struct {
	ID   string
	Data map[string]any
}

// eventStream is a live GET …/events response read in the background.
type eventStream struct {
	events chan sseEvent
	done   chan struct{}
	cancel context.CancelFunc
}

// events opens the stream's event stream on this node.
func (n *gatewayNode) events(streamID string, header http.Header) *eventStream {
	n.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.url("/restapi/v1/chat/"+streamID+"/events"), nil)
	require.NoError(n.t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(n.t, err)
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		cancel()
		n.t.Fatalf("events on %s: %d %s\n%s", n.name, res.StatusCode, b, n.logs.String())
	}
	s := &eventStream{events: make(chan sseEvent, 4096), done: make(chan struct{}), cancel: cancel}
	go func() { // exits when the body ends (server close or cancel)
		defer close(s.done)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		var data []string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "" && data != nil:
				_ = json.Unmarshal([]byte(strings.Join(data, "\n")), &ev.Data)
				s.events <- ev
				ev, data = sseEvent{}, nil
			case strings.HasPrefix(line, "id: "):
				ev.ID = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				data = append(data, strings.TrimPrefix(line, "data: "))
			}
		}
	}()
	n.t.Cleanup(s.close)
	return s
}

func (s *eventStream) close() {
	s.cancel()
	<-s.done
}

// next returns the next event for which keep is true.
func (s *eventStream) next(t *testing.T, keep func(map[string]any) bool) sseEvent {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-s.events:
			if keep(ev.Data) {
				return ev
			}
		case <-s.done:
			select {
			case ev := <-s.events:
				if keep(ev.Data) {
					return ev
				}
				continue
			default:
			}
			t.Fatal("event stream ended while waiting")
		case <-timeout:
			t.Fatal("no matching event within 10 s")
		}
	}
}

// nextWithin returns the data of the next event keep accepts within d, or
// nil when none came.
func (s *eventStream) nextWithin(d time.Duration, keep func(map[string]any) bool) map[string]any {
	timeout := time.After(d)
	for {
		select {
		case ev := <-s.events:
			if keep(ev.Data) {
				return ev.Data
			}
		case <-timeout:
			return nil
		}
	}
}

// ended reports whether the server closed the stream within d.
func (s *eventStream) ended(d time.Duration) bool {
	select {
	case <-s.done:
		return true
	case <-time.After(d):
		return false
	}
}

func withBody(body string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["body"] == body }
}

// socket is a WebSocket on …/ws read in the background.
type socket struct {
	conn   *websocket.Conn
	frames chan map[string]any
}

func (n *gatewayNode) socket(streamID, token string) *socket {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(n.t.Context(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws://"+n.public+"/restapi/v1/chat/"+streamID+"/ws",
		&websocket.DialOptions{HTTPHeader: bearer(token)})
	require.NoError(n.t, err, "websocket on %s", n.name)
	s := &socket{conn: conn, frames: make(chan map[string]any, 4096)}
	done := make(chan struct{})
	go func() { // exits when the connection ends
		defer close(done)
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				return
			}
			var m map[string]any
			if json.Unmarshal(data, &m) == nil {
				s.frames <- m
			}
		}
	}()
	n.t.Cleanup(func() {
		_ = conn.CloseNow()
		<-done
	})
	return s
}

func (s *socket) send(t *testing.T, frame map[string]any) {
	t.Helper()
	b, err := json.Marshal(frame)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	require.NoError(t, s.conn.Write(ctx, websocket.MessageText, b))
}

func (s *socket) next(t *testing.T, keep func(map[string]any) bool) map[string]any {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-s.frames:
			if keep(m) {
				return m
			}
		case <-timeout:
			t.Fatal("no matching WebSocket frame within 10 s")
		}
	}
}
