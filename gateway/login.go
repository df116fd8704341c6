package gateway

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"
)

// Namespaces of stream negotiation (RFC 6120 §5-7) and XEP-0478.
const (
	nsSASL         = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind         = "urn:ietf:params:xml:ns:xmpp-bind"
	nsStreamLimits = "urn:xmpp:stream-limits:0"
)

// loginParams is what one XMPP login needs.
type loginParams struct {
	user      jid.JID // bare JID to authenticate as
	resource  string  // resource to ask the server to bind
	password  string  // password or token, per mechanisms
	mechanism string  // forced SASL mechanism, or "" for the best offered
	// tlsMode and tlsConfig say how the stream is secured: STARTTLS is
	// negotiated here; a direct TLS socket arrives as *tls.Conn; none is
	// only for loopback servers (cmd refuses it elsewhere), whose link is
	// treated as secure so SASL may run over it.
	tlsMode   TLSMode
	tlsConfig *tls.Config
	maxRead   int64 // see xmppConn.maxRead
}

// passwordMechanisms are the SASL mechanisms a password login offers, best
// first. SCRAM proves the password without sending it (RFC 5802, 7677);
// PLAIN (RFC 4616) only runs on a secure stream (the SASL feature requires
// it) and is the last resort for servers with external auth that hash
// nothing (ejabberd's jwt, LDAP). The -PLUS variants are left out:
// servers disagree on the channel binding type over TLS 1.3 (tls-unique
// does not exist there), and a mismatch fails the login outright.
var passwordMechanisms = []sasl.Mechanism{sasl.ScramSha256, sasl.ScramSha1, sasl.Plain}

// mechanisms returns the candidates for a login, honouring a forced name.
func (p loginParams) mechanisms() ([]sasl.Mechanism, error) {
	if p.mechanism == "" {
		return passwordMechanisms, nil
	}
	for _, m := range passwordMechanisms {
		if m.Name == p.mechanism {
			return []sasl.Mechanism{m}, nil
		}
	}
	return nil, fmt.Errorf("gateway: unsupported SASL mechanism %q", p.mechanism)
}

// saslFailure is a SASL <failure/> (RFC 6120 §6.5): the condition decides
// what the login error means, the text is kept for the operator.
type saslFailure struct {
	condition string
	text      string
}

func (f saslFailure) Error() string {
	if f.text != "" {
		return "SASL failure: " + f.condition + " (" + f.text + ")"
	}
	return "SASL failure: " + f.condition
}

// bindFailure is a stanza error answering resource binding (RFC 6120 §7.6.2).
type bindFailure struct{ condition string }

func (f bindFailure) Error() string { return "resource binding refused: " + f.condition }

// noMechanism says the server offers none of the mechanisms we would use.
type noMechanism struct{ offered []string }

func (n noMechanism) Error() string {
	return "the XMPP server offers no SASL mechanism the gateway uses (offered: " + strings.Join(n.offered, ", ") + ")"
}

// login negotiates an XMPP client stream over raw, which the caller dialled
// and closes on error: STARTTLS when asked for, SASL, resource binding.
// mellium.im/xmpp runs the negotiation (stream headers, feature lists,
// STARTTLS, the stream restarts), bounded by ctx: when it ends the socket
// is closed, so a server that says nothing cannot hold a login, or a
// goroutine, past its deadline. SASL and binding
// are features of our own, on mellium's public StreamFeature API, so a
// failure is known by its condition and the requested resource is bound
// (mellium v0.22's bind feature sends an empty <resource/>).
func login(ctx context.Context, raw net.Conn, p loginParams) (*xmppConn, error) {
	mechs, err := p.mechanisms()
	if err != nil {
		return nil, err
	}
	var bound jid.JID
	var limits streamLimits
	features := []xmpp.StreamFeature{saslFeature(p.password, mechs), bindFeature(p.resource, &bound), limits.feature()}
	var state xmpp.SessionState
	switch p.tlsMode {
	case TLSStartTLS:
		features = append([]xmpp.StreamFeature{startTLS(p.tlsConfig)}, features...)
	case TLSNone, TLSDirect:
		// Direct TLS is secure from the start; mellium would see it by its
		// *tls.Conn type, which the idleConn wrapper hides.
		state = xmpp.Secure
	}
	// mellium moves the socket's deadline into the past when ctx ends but
	// clears it again at once, which can lose the wake-up of a blocked read
	// (a silent server then holds the login forever, as a test showed); a
	// login whose ctx ended has failed anyway, so its socket is closed.
	stopInterrupt := context.AfterFunc(ctx, func() { _ = raw.Close() })
	negotiator := xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
		return xmpp.StreamConfig{Features: features}
	})
	session, err := xmpp.NewSession(ctx, p.user.Domain(), p.user, newIdleConn(raw), state, negotiator)
	if !stopInterrupt() || ctx.Err() != nil {
		// ctx ended (the interrupt ran or is running): whatever the
		// negotiation says, the socket is done.
		return nil, fmt.Errorf("%w: %v", ctx.Err(), err)
	}
	if err != nil {
		return nil, err
	}
	if bound.Equal(jid.JID{}) {
		return nil, errors.New("the XMPP server bound no resource")
	}
	// From here on the gateway reads and writes the stream itself and the
	// session is dropped, with its encoder's 4 KiB buffer, its decoder and
	// its feature maps (a third of an idle stream's memory). Nothing is
	// lost in the hand-over: mellium's decoder reads the idleConn byte by
	// byte and has taken exactly the bind result; whatever the server sent
	// after it is still in the idleConn.
	c, ok := session.Conn().(*idleConn)
	if !ok {
		return nil, fmt.Errorf("gateway: the negotiated session runs on a %T, not the connection login made", session.Conn())
	}
	return &xmppConn{
		raw:       c,
		tokens:    streamDecoder(c),
		maxStanza: limits.maxBytes,
		maxRead:   p.maxRead,
		full:      bound.String(),
	}, nil
}

// startTLS is mellium's STARTTLS feature (RFC 6120 §5) whose TLS
// connection is wrapped in an idleConn, so the decoder of the restarted
// stream reads it without a bufio.Reader of its own.
func startTLS(cfg *tls.Config) xmpp.StreamFeature {
	f := xmpp.StartTLS(cfg)
	negotiate := f.Negotiate
	f.Negotiate = func(ctx context.Context, s *xmpp.Session, data interface{}) (xmpp.SessionState, io.ReadWriter, error) {
		mask, rw, err := negotiate(ctx, s, data)
		if c, ok := rw.(net.Conn); ok && err == nil {
			rw = newIdleConn(c)
		}
		return mask, rw, err
	}
	return f
}

// writeNode sends one element on the session's connection during
// negotiation, serialised by the encoder every stanza goes through.
func writeNode(s *xmpp.Session, n xmlNode) error {
	raw, err := xml.Marshal(n)
	if err != nil {
		return err
	}
	_, err = s.Conn().Write(raw)
	return err
}

// readNode reads the next element the server sends during negotiation.
func readNode(s *xmpp.Session) (xmlNode, error) {
	r := s.TokenReader()
	defer r.Close()
	return nextNode(xml.NewTokenDecoder(r))
}

// condition is the defined condition of a SASL failure (RFC 6120 §6.5):
// its first child other than <text/>.
func condition(n *xmlNode) string {
	for i := range n.Children {
		if c := n.Children[i].XMLName.Local; c != "text" {
			return c
		}
	}
	return "undefined-condition"
}

// saslFeature authenticates with the first of mechs the server offers
// (RFC 6120 §6); mellium.im/sasl runs the mechanisms. It needs a secure
// stream, like mellium's own SASL feature.
func saslFeature(password string, mechs []sasl.Mechanism) xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: nsSASL, Local: "mechanisms"},
		Necessary:  xmpp.Secure,
		Prohibited: xmpp.Authn,
		Parse: func(_ context.Context, d *xml.Decoder, start *xml.StartElement) (bool, any, error) {
			var n xmlNode
			if err := d.DecodeElement(&n, start); err != nil {
				return true, nil, err
			}
			var offered []string
			for _, c := range n.Children {
				if c.XMLName.Local == "mechanism" {
					offered = append(offered, strings.TrimSpace(c.Text))
				}
			}
			return true, offered, nil
		},
		Negotiate: func(ctx context.Context, s *xmpp.Session, data any) (xmpp.SessionState, io.ReadWriter, error) {
			offered, _ := data.([]string)
			i := slices.IndexFunc(mechs, func(m sasl.Mechanism) bool { return slices.Contains(offered, m.Name) })
			if i < 0 {
				return 0, nil, noMechanism{offered: offered}
			}
			opts := []sasl.Option{
				sasl.Credentials(func() ([]byte, []byte, []byte) {
					return []byte(s.LocalAddr().Localpart()), []byte(password), nil
				}),
				sasl.RemoteMechanisms(offered...),
			}
			if cs := s.ConnectionState(); cs.Version != 0 {
				opts = append(opts, sasl.TLSState(cs))
			}
			client := sasl.NewClient(mechs[i], opts...)
			more, resp, err := client.Step(nil)
			if err != nil {
				return 0, nil, err
			}
			auth := elem(nsSASL, "auth", "mechanism", mechs[i].Name)
			auth.Text = saslPayload(resp)
			if err := writeNode(s, auth); err != nil {
				return 0, nil, err
			}
			for {
				n, err := readNode(s)
				if err != nil {
					return 0, nil, err
				}
				switch n.XMLName {
				case xml.Name{Space: nsSASL, Local: "failure"}:
					return 0, nil, saslFailure{condition: condition(&n), text: n.childText(nsSASL, "text")}
				case xml.Name{Space: nsSASL, Local: "challenge"}, xml.Name{Space: nsSASL, Local: "success"}:
				default:
					return 0, nil, fmt.Errorf("unexpected <%s/> during SASL", n.XMLName.Local)
				}
				challenge, err := base64.StdEncoding.DecodeString(strings.TrimSpace(n.Text))
				if err != nil {
					return 0, nil, fmt.Errorf("SASL: %w", err)
				}
				success := n.XMLName.Local == "success"
				if more {
					// On success the server's last data is checked too (SCRAM's
					// server signature, RFC 5802 §5.1 "v=").
					if more, resp, err = client.Step(challenge); err != nil {
						return 0, nil, err
					}
				}
				if success {
					if more {
						return 0, nil, errors.New("SASL: the server reported success before the mechanism finished")
					}
					// A restart follows (RFC 6120 §6.4.6): returning the
					// connection tells mellium to send a new stream header.
					return xmpp.Authn, s.Conn(), nil
				}
				r := elem(nsSASL, "response")
				r.Text = saslPayload(resp)
				if err := writeNode(s, r); err != nil {
					return 0, nil, err
				}
			}
		},
	}
}

// saslPayload is base64 SASL data; empty data is "=" (RFC 6120 §6.4.2).
func saslPayload(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// bindFeature binds resource (RFC 6120 §7) and stores the JID the server
// bound, which may differ from the one asked for.
func bindFeature(resource string, bound *jid.JID) xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: nsBind, Local: "bind"},
		Necessary:  xmpp.Authn,
		Prohibited: xmpp.Ready,
		Parse: func(_ context.Context, d *xml.Decoder, start *xml.StartElement) (bool, any, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, s *xmpp.Session, _ any) (xmpp.SessionState, io.ReadWriter, error) {
			id := randomHex(8)
			iq := elem("", "iq", "type", "set", "id", id)
			b := elem(nsBind, "bind")
			if resource != "" {
				r := elem(nsBind, "resource")
				r.Text = resource
				b.Children = append(b.Children, r)
			}
			iq.Children = append(iq.Children, b)
			if err := writeNode(s, iq); err != nil {
				return 0, nil, err
			}
			n, err := readNode(s)
			if err != nil {
				return 0, nil, err
			}
			if n.XMLName.Local != "iq" || n.attr("id") != id {
				return 0, nil, fmt.Errorf("unexpected <%s/> in answer to resource binding", n.XMLName.Local)
			}
			if n.attr("type") == "error" {
				return 0, nil, bindFailure{condition: stanzaError(n.child("", "error")).Condition}
			}
			b = xmlNode{}
			if c := n.child(nsBind, "bind"); c != nil {
				b = *c
			}
			j, err := jid.Parse(b.childText(nsBind, "jid"))
			if err != nil {
				return 0, nil, fmt.Errorf("resource binding: the server bound an invalid JID: %w", err)
			}
			*bound = j
			return xmpp.Ready, nil, nil
		},
	}
}

// streamLimits is what the server announced in XEP-0478 stream limits.
type streamLimits struct{ maxBytes int }

// feature reads the limits from the stream features; there is nothing to
// negotiate (no Negotiate func, so mellium only parses it).
func (l *streamLimits) feature() xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name: xml.Name{Space: nsStreamLimits, Local: "limits"},
		Parse: func(_ context.Context, d *xml.Decoder, start *xml.StartElement) (bool, any, error) {
			var n xmlNode
			if err := d.DecodeElement(&n, start); err != nil {
				return false, nil, err
			}
			if v, err := strconv.Atoi(strings.TrimSpace(n.childText(nsStreamLimits, "max-bytes"))); err == nil && v > 0 {
				l.maxBytes = v
			}
			return false, nil, nil
		},
	}
}

// classifyLoginError maps a failed login onto the gateway's sentinels by
// what the server said (SASL condition, stream error, bind error) or what
// the network did; the text is kept for the operator (it holds no
// credentials).
func classifyLoginError(err error) error {
	var sf saslFailure
	var se stream.Error
	var netErr net.Error
	var nm noMechanism
	switch {
	case errors.As(err, &sf):
		switch sf.condition {
		case "not-authorized", "account-disabled", "credentials-expired", "invalid-authzid":
			return fmt.Errorf("%w: %s", ErrAuthFailed, sf)
		}
		// temporary-auth-failure, aborted, malformed-request, mechanism-too-weak…:
		// the server or the gateway's configuration, not the user's credentials.
		return fmt.Errorf("%w: %s", ErrServerUnreachable, sf)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %s", ErrServerTimeout, err)
	case errors.As(err, &se):
		return fmt.Errorf("%w: stream error: %s", ErrServerUnreachable, se.Err)
	case errors.As(err, &nm):
		return fmt.Errorf("%w: %s", ErrServerUnreachable, nm)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: server closed the connection during login", ErrServerUnreachable)
	case errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Errorf("%w: %s", ErrServerTimeout, err)
	}
	return fmt.Errorf("%w: %s", ErrServerUnreachable, err)
}
