package gateway

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"time"

	xmpp "github.com/xmppo/go-xmpp"
	"mellium.im/xmpp/jid"
)

// TLSMode says how the gateway secures its XMPP connections.
type TLSMode string

// TLS modes; TLSNone is only accepted for loopback servers (checked by cmd).
const (
	TLSStartTLS TLSMode = "starttls"
	TLSDirect   TLSMode = "direct"
	TLSNone     TLSMode = "none"
)

// conn is one authenticated XMPP connection as a stream uses it: read the
// next top-level element, write a stanza, close. xmppConn implements it over
// go-xmpp; tests may supply their own.
type conn interface {
	// Read returns the next top-level element of the XMPP stream.
	Read() (xmlNode, error)
	// Write sends one serialised stanza.
	Write(raw []byte) error
	// JID is the full JID the server bound.
	JID() string
	// Close closes the socket. Callers say goodbye (</stream:stream>) first.
	Close() error
}

// dialFunc opens and authenticates one XMPP connection.
type dialFunc func(ctx context.Context, user jid.JID, creds credentials, resource string) (conn, error)

// dial logs in with go-xmpp under an overall deadline. go-xmpp has none of
// its own (only a TCP dial timeout), so NewClient runs in a goroutine owned
// by the manager; if the deadline passes first, that goroutine closes the
// client itself whenever the server finally answers.
func (m *Manager) dial(ctx context.Context, user jid.JID, creds credentials, resource string) (conn, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.LoginTimeout)
	defer cancel()
	password, err := creds.secret()
	if err != nil {
		return nil, err
	}
	mechanism := creds.mechanism()
	if mechanism == "" {
		mechanism = m.cfg.Mechanism
	}
	opts := xmpp.Options{
		Host:            m.cfg.Addr,
		User:            user.String(),
		Password:        password,
		Resource:        resource,
		DialTimeout:     m.cfg.LoginTimeout,
		SoftwareName:    "xmppgw",
		SoftwareVersion: "dev",
		Mechanism:       mechanism,
	}
	switch m.cfg.TLS {
	case TLSNone:
		opts.NoTLS, opts.InsecureAllowUnencryptedAuth = true, true
	case TLSDirect:
		opts.TLSConfig = m.tlsConfig()
	default:
		opts.NoTLS, opts.StartTLS, opts.TLSConfig = true, true, m.tlsConfig()
	}
	type result struct {
		c   *xmpp.Client
		err error
	}
	ch := make(chan result)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		c, err := opts.NewClient()
		if err != nil {
			m.reclaimFailedLogin()
		}
		select {
		case ch <- result{c, err}:
		case <-ctx.Done():
			if c != nil {
				closeUnread(c)
			}
		}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, classifyLoginError(r.err)
		}
		c, err := takeOver(r.c)
		if err != nil {
			closeUnread(r.c)
			return nil, err
		}
		c.maxRead = int64(m.cfg.MaxReadBytes)
		return c, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w (after %s)", ErrServerTimeout, m.cfg.LoginTimeout)
	}
}

func (m *Manager) tlsConfig() *tls.Config {
	if m.cfg.TLSConfig != nil {
		return m.cfg.TLSConfig.Clone()
	}
	return &tls.Config{ServerName: m.cfg.Domain, MinVersion: tls.VersionTLS12}
}

// reclaimFailedLogin closes the socket go-xmpp leaks on a failed login (it
// returns no client, so nothing else can): the socket is unreachable and its
// finalizer closes it at the next GC. Failures within a second share one
// collection, run a second later, which bounds both the leak and the cost of
// a brute-force burst.
func (m *Manager) reclaimFailedLogin() {
	if m.reclaimPending.CompareAndSwap(false, true) {
		time.AfterFunc(time.Second, func() {
			m.reclaimPending.Store(false)
			runtime.GC()
		})
	}
}

// closeUnread closes a client whose stream nobody reads: Close sends the
// closing tag and reads until the server closes too.
func closeUnread(c *xmpp.Client) {
	_ = c.Close()
}

// classifyLoginError maps go-xmpp's string errors onto the gateway's
// sentinels; the text is kept for the operator (it holds no credentials).
func classifyLoginError(err error) error {
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "auth failure"):
		return fmt.Errorf("%w: %s", ErrAuthFailed, msg)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: server closed the connection during login", ErrServerUnreachable)
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return fmt.Errorf("%w: %s", ErrServerTimeout, msg)
	}
	return fmt.Errorf("%w: %s", ErrServerUnreachable, msg)
}

// fatalRecvError tells a broken stream from go-xmpp's recoverable Recv
// errors: it reports unknown top-level elements (e.g. XEP-0198 <r/>) and
// some payload parse failures as errors while the stream keeps working.
func fatalRecvError(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var netErr net.Error
	var synErr *xml.SyntaxError
	if errors.As(err, &netErr) || errors.As(err, &synErr) {
		return true
	}
	msg := err.Error()
	return strings.HasPrefix(msg, "stream error") || strings.HasPrefix(msg, "server closed stream") ||
		strings.Contains(msg, "use of closed network connection")
}
