package api

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/stretchr/testify/require"
	xmpp "github.com/xmppo/go-xmpp"

	"github.com/xmppgw/xmppgw/gateway"
)

// directClient logs a user in with go-xmpp, past the gateway: the
// independent peer that can send what the gateway itself would refuse.
func (e *testEnv) directClient(user, pass string) *xmpp.Client {
	e.t.Helper()
	opts := xmpp.Options{Host: e.xmpp.Addr, User: user + "@" + e.xmpp.Domain, Password: pass,
		Resource: "direct", NoTLS: true, InsecureAllowUnencryptedAuth: true, DialTimeout: 10 * time.Second}
	c, err := opts.NewClient()
	require.NoError(e.t, err)
	// go-xmpp answers nothing by itself; drain what arrives so the server
	// never stalls on a full socket, until Close ends the stream.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := c.Recv(); err != nil {
				return
			}
		}
	}()
	e.t.Cleanup(func() {
		_, _ = c.SendOrg("</stream:stream>")
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		_ = c.Close()
	})
	return c
}

// deepMessage is a chat message whose body is followed by an element
// nested levels deep: more than the gateway reads (maxXMLDepth is 64).
func deepMessage(to, id, body string, levels int) string {
	return fmt.Sprintf(`<message to='%s' type='chat' id='%s'><body>%s</body>%s%s</message>`, to, id, body,
		strings.Repeat("<deep xmlns='urn:example:deep'>", levels), strings.Repeat("</deep>", levels))
}

// One over-deep message from any XMPP client is skipped as one stanza: the
// receiving stream stays online (no reconnect), reports it as one error
// event naming the sender, and delivers what follows. Its history skips the
// archived copy and says so, promptly (before the fix: a reconnect loop, and
// history timed out after 15 s).
func TestPoisonStanza_SkippedNotReconnected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	bob := e.login(e.newUser("bob"))
	bobEv := e.subscribe("/restapi/v1/chat/"+bob.StreamID+"/events", bearerHeader(bob.Token))
	bobEv.next(t, ofType("stream"))
	malloryUser, malloryPass := e.newUser("mallory")
	mallory := e.directClient(malloryUser, malloryPass)
	malloryBare := malloryUser + "@" + e.xmpp.Domain

	before := e.mgr.Stats().Reconnects
	_, err := mallory.SendOrg(deepMessage(bare(bob.JID), "poison-1", "poison", 70))
	require.NoError(t, err)
	_, err = mallory.Send(xmpp.Chat{Remote: bare(bob.JID), Type: "chat", Text: "after the poison"})
	require.NoError(t, err)

	var errorEvents []map[string]any
	_, got := bobEv.next(t, func(m map[string]any) bool {
		switch {
		case m["type"] == "stream":
			t.Fatalf("the stream changed state: %v", m)
		case m["type"] == "error":
			errorEvents = append(errorEvents, m)
		}
		return m["type"] == "chat"
	})
	require.Equal(t, "after the poison", got["body"])
	require.Len(t, errorEvents, 1, "one error event for the skipped stanza")
	ev := errorEvents[0]
	require.Equal(t, "message", ev["skipped"])
	require.Equal(t, "poison-1", ev["id"])
	require.True(t, strings.HasPrefix(ev["from"].(string), malloryBare+"/"), ev["from"])
	reason := ev["error"].(map[string]any)
	require.Contains(t, reason["text"], "nested deeper than 64")
	require.NotContains(t, fmt.Sprint(ev), "poison\"", "the payload is not delivered")
	require.Equal(t, before, e.mgr.Stats().Reconnects, "no reconnect")

	// The archive holds both; the history page skips the poisoned one and
	// says so, without waiting for a timeout.
	start := time.Now()
	res, body := e.do(http.MethodGet, "/restapi/v1/chat/"+bob.StreamID+"/messages?with="+url.QueryEscape(malloryBare), bob.Token, nil, "")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	require.Less(t, time.Since(start), 5*time.Second, "history answered promptly")
	var page struct {
		Messages []map[string]any `json:"messages"`
		Skipped  []map[string]any `json:"skipped"`
		Complete bool             `json:"complete"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &page), body)
	require.Len(t, page.Messages, 1, body)
	require.Equal(t, "after the poison", page.Messages[0]["body"])
	require.Len(t, page.Skipped, 1, body)
	require.NotEmpty(t, page.Skipped[0]["id"], "the archive id of the skipped message")
	require.True(t, strings.HasPrefix(page.Skipped[0]["from"].(string), malloryBare+"/"), body)
	require.Contains(t, page.Skipped[0]["reason"], "nested deeper than 64")
	require.True(t, page.Complete)

	st, err := e.mgr.Stream(bob.StreamID)
	require.NoError(t, err)
	require.Equal(t, "online", st.State())
	require.Equal(t, before, e.mgr.Stats().Reconnects, "no reconnect")
}

// A request whose connection dropped before the answer came is a 503 the
// client may retry, and says when (Retry-After).
func TestWriteError_RetryableServiceUnavailable(t *testing.T) {
	t.Parallel()
	s := NewServer(Config{JWTSecret: testSecret}, nil, nil, nil)
	for _, tt := range []struct {
		name string
		err  error
		code int
	}{
		{"connection lost", gateway.ErrConnectionLost, 50310},
		{"stream reconnecting", gateway.ErrStreamReconnecting, 50300},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := middleware.RequestID(s.handle(func(http.ResponseWriter, *http.Request) error {
				return fmt.Errorf("disco: %w", tt.err)
			}))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
			require.Equal(t, http.StatusServiceUnavailable, rec.Code)
			require.Equal(t, "2", rec.Header().Get("Retry-After"))
			var er ErrorResponse
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &er))
			require.Equal(t, tt.code, er.Code)
		})
	}
}

// cutProxy stands between the gateway and Prosody: it can hold the
// server's answers back (a server that stops answering) and cut every
// connection (a dropped socket).
type cutProxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns []net.Conn
	held  bool
	sent  strings.Builder // what the gateway wrote while answers were held
	wrote chan struct{}   // signalled on every such write
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutProxy{t: t, ln: ln, target: target, wrote: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go p.pipe(s, c, false)
			go p.pipe(c, s, true)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		p.cut()
	})
	return p
}

// pipe copies from src to dst; fromGateway says which way.
func (p *cutProxy) pipe(src, dst net.Conn, fromGateway bool) {
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if err != nil {
			_ = dst.Close()
			return
		}
		p.mu.Lock()
		held := p.held
		if held && fromGateway {
			p.sent.Write(buf[:n])
			select {
			case p.wrote <- struct{}{}:
			default:
			}
		}
		p.mu.Unlock()
		if held && !fromGateway {
			continue // the answer never arrives
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			_ = src.Close()
			return
		}
	}
}

func (p *cutProxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = true
}

// waitSent waits until the gateway has written marker while held.
func (p *cutProxy) waitSent(marker string) {
	p.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		p.mu.Lock()
		seen := strings.Contains(p.sent.String(), marker)
		p.mu.Unlock()
		if seen {
			return
		}
		select {
		case <-p.wrote:
		case <-timeout:
			p.t.Fatalf("the gateway never sent %q", marker)
		}
	}
}

// cut closes every connection and lets new ones through again.
func (p *cutProxy) cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns, p.held = nil, false
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// A request waiting for the server's answer fails with 503 + Retry-After
// the moment the connection drops, not with 504 after the 15 s request
// timeout; the stream then reconnects.
func TestPendingRequest_503WhenTheConnectionDrops(t *testing.T) {
	t.Parallel()
	proxy := newCutProxy(t, sharedXMPP.Addr)
	e := newEnv(t, envOptions{addr: proxy.ln.Addr().String()})
	alice := e.login(e.newUser("alice"))
	events := e.subscribe("/restapi/v1/chat/"+alice.StreamID+"/events", bearerHeader(alice.Token))
	events.next(t, ofType("stream"))

	proxy.hold() // the server stops answering
	type result struct {
		res  *http.Response
		body string
	}
	got := make(chan result, 1)
	go func() {
		res, body := e.do(http.MethodGet, "/restapi/v1/chat/"+alice.StreamID+"/vcard", alice.Token, nil, "")
		got <- result{res, body}
	}()
	proxy.waitSent("vcard-temp")
	start := time.Now()
	proxy.cut()
	var r result
	select {
	case r = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the request still waits after the connection dropped")
	}
	require.Less(t, time.Since(start), 3*time.Second)
	er := requireError(t, r.res, r.body, http.StatusServiceUnavailable)
	require.Equal(t, 50310, er.Code)
	require.Equal(t, "2", r.res.Header.Get("Retry-After"))

	events.next(t, func(m map[string]any) bool { return m["type"] == "stream" && m["state"] == "online" })
	res, body := e.do(http.MethodGet, "/restapi/v1/chat/"+alice.StreamID+"/vcard", alice.Token, nil, "")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
}
