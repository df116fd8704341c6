package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

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
// next top-level element, write a stanza, end the stream, close. xmppConn
// implements it over a negotiated session; tests may supply their own.
type conn interface {
	// Read returns the next top-level element of the XMPP stream.
	Read() (xmlNode, error)
	// Write sends one serialised stanza.
	Write(raw []byte) error
	// JID is the full JID the server bound.
	JID() string
	// EndStream sends </stream:stream> (RFC 6120 §4.4) and lets a pending
	// Read wait at most wait for the server's own closing tag.
	EndStream(wait time.Duration) error
	// Close closes the socket. Callers end the stream first.
	Close() error
}

// dialFunc opens and authenticates one XMPP connection.
type dialFunc func(ctx context.Context, user jid.JID, creds credentials, resource string) (conn, error)

// dial connects to the XMPP server and logs in (login.go), all of it
// bounded by LoginTimeout, by ctx and by Manager.Close; a failed login
// closes its socket before returning. Once bound, the stream announces
// itself available (RFC 6121 §4.2 initial presence), which also makes the
// server deliver offline messages.
func (m *Manager) dial(ctx context.Context, user jid.JID, creds credentials, resource string) (conn, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.LoginTimeout)
	defer cancel()
	stopLogin := context.AfterFunc(m.life, cancel)
	defer stopLogin()
	password, err := creds.secret()
	if err != nil {
		return nil, err
	}
	mechanism := creds.mechanism()
	if mechanism == "" {
		mechanism = m.cfg.Mechanism
	}
	raw, err := m.connect(ctx)
	if err != nil {
		return nil, m.loginError(err)
	}
	c, err := login(ctx, raw, loginParams{user: user.Bare(), resource: resource, password: password,
		mechanism: mechanism, tlsMode: m.cfg.TLS, tlsConfig: m.tlsConfig(), maxRead: int64(m.cfg.MaxReadBytes)})
	if err == nil {
		var presence []byte
		if presence, err = encodePresence(OutgoingPresence{}); err == nil {
			err = c.Write(presence)
		}
	}
	if err != nil {
		_ = raw.Close()
		return nil, m.loginError(err)
	}
	return c, nil
}

// connect opens the TCP (or, in direct mode, TLS) connection.
func (m *Manager) connect(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	if m.cfg.TLS == TLSDirect {
		td := tls.Dialer{NetDialer: &d, Config: m.tlsConfig()}
		return td.DialContext(ctx, "tcp", m.cfg.Addr)
	}
	return d.DialContext(ctx, "tcp", m.cfg.Addr)
}

// loginError classifies a failed login; one ended by Manager.Close says so.
func (m *Manager) loginError(err error) error {
	if m.life.Err() != nil {
		return ErrClosed
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (after %s)", ErrServerTimeout, m.cfg.LoginTimeout)
	}
	return classifyLoginError(err)
}

func (m *Manager) tlsConfig() *tls.Config {
	if m.cfg.TLSConfig != nil {
		return m.cfg.TLSConfig.Clone()
	}
	return &tls.Config{ServerName: m.cfg.Domain, MinVersion: tls.VersionTLS12}
}
