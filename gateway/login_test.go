package gateway

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"
)

// silentServer accepts TCP connections and never says a word; it returns
// the address and a channel that gets each accepted connection.
func silentServer(t *testing.T) (string, chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepted := make(chan net.Conn, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		for {
			select {
			case c := <-accepted:
				_ = c.Close()
			default:
				return
			}
		}
	})
	return ln.Addr().String(), accepted
}

// verifyNoLeaks checks, after every other cleanup of the test (cleanups
// run last registered first), that the test left no goroutine behind.
func verifyNoLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

func silentManager(t *testing.T, addr string) *Manager {
	t.Helper()
	m, err := NewManager(Config{Addr: addr, Domain: "example.com", TLS: TLSNone, LoginTimeout: time.Minute}, &recordingPub{}, nil)
	require.NoError(t, err)
	return m
}

// A login against a server that accepts TCP and then says nothing ends
// when its context does, long before LoginTimeout, and leaves no goroutine.
func TestLogin_SilentServer_EndsWithItsContext(t *testing.T) {
	verifyNoLeaks(t)
	addr, accepted := silentServer(t)
	m := silentManager(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := m.Login(ctx, "alice", "pw", "")
	require.ErrorIs(t, err, ErrServerTimeout)
	require.Less(t, time.Since(start), 5*time.Second)
	(<-accepted).Close()
	closeCtx, closeCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer closeCancel()
	require.NoError(t, m.Close(closeCtx))
}

// Manager.Close ends a login in flight against a silent server: the login
// says the gateway is shutting down, and no goroutine outlives Close.
func TestLogin_SilentServer_EndsWithManagerClose(t *testing.T) {
	verifyNoLeaks(t)
	addr, accepted := silentServer(t)
	m := silentManager(t, addr)
	errc := make(chan error, 1)
	go func() {
		_, err := m.Login(context.Background(), "alice", "pw", "")
		errc <- err
	}()
	server := <-accepted // the login is waiting for the stream header
	defer server.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, m.Close(ctx))
	select {
	case err := <-errc:
		require.ErrorIs(t, err, ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("the login still waits after Manager.Close")
	}
}

// Login failures are told apart by what the server said, not by message
// text: a SASL condition about the credentials is ErrAuthFailed, anything
// else about the server is ErrServerUnreachable, time is ErrServerTimeout.
func TestClassifyLoginError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want error
	}{
		{saslFailure{condition: "not-authorized"}, ErrAuthFailed},
		{saslFailure{condition: "account-disabled", text: "banned"}, ErrAuthFailed},
		{saslFailure{condition: "credentials-expired"}, ErrAuthFailed},
		{saslFailure{condition: "temporary-auth-failure"}, ErrServerUnreachable},
		{saslFailure{condition: "mechanism-too-weak"}, ErrServerUnreachable},
		{fmt.Errorf("negotiate: %w", saslFailure{condition: "not-authorized"}), ErrAuthFailed},
		{stream.HostUnknown, ErrServerUnreachable},
		{noMechanism{offered: []string{"X-OAUTH2"}}, ErrServerUnreachable},
		{bindFailure{condition: "not-allowed"}, ErrServerUnreachable},
		{io.EOF, ErrServerUnreachable},
		{context.DeadlineExceeded, ErrServerTimeout},
		{&net.OpError{Op: "read", Err: timeoutError{}}, ErrServerTimeout},
		{errors.New("connection refused"), ErrServerUnreachable},
	} {
		got := classifyLoginError(tc.err)
		require.ErrorIs(t, got, tc.want, "%v", tc.err)
		for _, other := range []error{ErrAuthFailed, ErrServerUnreachable, ErrServerTimeout} {
			if other != tc.want {
				require.NotErrorIs(t, got, other, "%v", tc.err)
			}
		}
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// scriptedServer plays the server side of one login (RFC 6120 §4-7) over
// a loopback socket: stream header, SASL PLAIN accepting password "pw",
// XEP-0478 limits, resource binding, then a message written in the same
// packet as the bind result (as offline messages arrive right after login).
// It reports what it saw on the returned channel.
func scriptedServer(t *testing.T) (string, chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	seen := make(chan string, 8)
	done := make(chan struct{})
	t.Cleanup(func() { _ = ln.Close(); <-done })
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		d := xml.NewDecoder(c)
		next := func() (xmlNode, bool) {
			for {
				tok, err := d.Token()
				if err != nil {
					return xmlNode{}, false
				}
				if s, ok := tok.(xml.StartElement); ok {
					if s.Name.Local == "stream" {
						return xmlNode{XMLName: s.Name}, true
					}
					var n xmlNode
					return n, d.DecodeElement(&n, &s) == nil
				}
			}
		}
		header := `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='example.com' version='1.0'>`
		if _, ok := next(); !ok {
			return
		}
		fmt.Fprint(c, header+`<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>X-OAUTH2</mechanism><mechanism>PLAIN</mechanism></mechanisms>`+
			`<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>10000</max-bytes></limits></stream:features>`)
		auth, ok := next()
		if !ok {
			return
		}
		seen <- "auth " + auth.attr("mechanism")
		if auth.Text != base64.StdEncoding.EncodeToString([]byte("\x00alice\x00pw")) {
			fmt.Fprint(c, `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/><text>wrong</text></failure>`)
			return
		}
		fmt.Fprint(c, `<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`)
		if _, ok := next(); !ok { // the restarted stream's header
			return
		}
		fmt.Fprint(c, header+`<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>`)
		iq, ok := next()
		if !ok {
			return
		}
		resource := iq.child(nsBind, "bind").childText(nsBind, "resource")
		seen <- "bind " + resource
		fmt.Fprintf(c, `<iq type='result' id='%s'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@example.com/%s</jid></bind></iq>`+
			`<message from='bob@example.com/x' id='offline1'><body>hi</body></message>`, iq.attr("id"), resource)
		p, ok := next()
		if ok {
			seen <- "got " + p.XMLName.Local
		}
		for { // until the client ends the stream
			tok, err := d.Token()
			if err != nil {
				return
			}
			if e, ok := tok.(xml.EndElement); ok && e.Name.Space == nsStreams && e.Name.Local == "stream" {
				break
			}
		}
		seen <- "client ended the stream"
		fmt.Fprint(c, `<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`)
	}()
	return ln.Addr().String(), seen
}

// The login binds the resource asked for, reads the server's stanza limit,
// sends initial presence, and loses nothing the server wrote right after
// the bind result.
func TestDial_NegotiatesTheWholeLogin(t *testing.T) {
	addr, seen := scriptedServer(t)
	m := silentManager(t, addr)
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	c, err := m.dial(context.Background(), jid.MustParse("alice@example.com"), passwordCredentials("pw"), "desk.1a2b")
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, "auth PLAIN", <-seen, "PLAIN is the best mechanism offered that the gateway uses")
	require.Equal(t, "bind desk.1a2b", <-seen)
	require.Equal(t, "alice@example.com/desk.1a2b", c.JID())
	require.Equal(t, 10000, c.(*xmppConn).maxStanza)
	n, err := c.Read()
	require.NoError(t, err)
	require.Equal(t, "offline1", n.attr("id"))
	require.Equal(t, xml.Name{Space: nsClient, Local: "message"}, n.XMLName, "the stream header's namespace holds after login")
	require.Equal(t, "hi", n.childText(nsClient, "body"))
	require.Equal(t, "got presence", <-seen)
	require.NoError(t, c.EndStream(time.Second))
	require.Equal(t, "client ended the stream", <-seen, "EndStream writes </stream:stream>")
	_, err = c.Read()
	require.EqualError(t, err, "stream error: conflict")
}

// A wrong password is ErrAuthFailed by its SASL condition.
func TestDial_SASLFailureIsAuthFailed(t *testing.T) {
	addr, seen := scriptedServer(t)
	m := silentManager(t, addr)
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	_, err := m.dial(context.Background(), jid.MustParse("alice@example.com"), passwordCredentials("nope"), "desk")
	require.ErrorIs(t, err, ErrAuthFailed)
	require.ErrorContains(t, err, "not-authorized")
	require.Equal(t, "auth PLAIN", <-seen)
}
