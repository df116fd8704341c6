package gateway

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"sync"

	"mellium.im/xmpp/jid"
)

// ErrNoSuchAccount means an on-behalf login named an account the XMPP
// server does not have.
var ErrNoSuchAccount = errors.New("the XMPP server has no such account")

// nsAccountProbe marks the gateway's account probe (accountExists), so a
// copy that reaches one of the account's sessions is recognised and
// dropped.
const nsAccountProbe = "urn:xmppgw:account-probe:0"

// An on-behalf login proves nothing about the account on servers whose
// token auth does not look it up: ejabberd's jwt auth accepts a valid
// token for any name and opens a session (issue 23). So each supported
// server gets a check (docs/admin-login.md):
//
//   - ejabberd: before the login, the service account probes the account
//     (accountExists). It has to be before: once a token login for the
//     name succeeded, ejabberd's auth cache reports the account as
//     existing.
//   - Prosody: mod_auth_xmppgw_jwt refuses a token for an account that
//     does not exist, so the login fails in SASL; Manager.LoginAs tells
//     that refusal from a bad token by the service account's own token
//     login. Prosody silently drops the probe either way.

// accountExists asks the server whether account exists, from this stream:
// a body-less headline to the account's bare JID, then a ping to it.
// RFC 6121 §8.5.1 lets a server answer a message to an account that does
// not exist with service-unavailable, and ejabberd does; a headline for an
// existing account with no available resource is dropped silently
// (§8.5.2.2.1), and one that is online gets it (marked, see
// isAccountProbe). The server handles a stream's stanzas in order (RFC
// 6120 §10.1), so a bounce is read before the ping's answer, or not at all.
// It reports true when no bounce came.
func (s *Stream) accountExists(ctx context.Context, account jid.JID) (bool, error) {
	type probe struct {
		XMLName xml.Name `xml:"urn:xmppgw:account-probe:0 probe"`
	}
	type headline struct {
		XMLName xml.Name `xml:"message"`
		Type    string   `xml:"type,attr"`
		ID      string   `xml:"id,attr"`
		To      string   `xml:"to,attr"`
		Probe   probe
	}
	id := newStanzaID()
	bare := account.Bare().String()
	msg, err := xml.Marshal(headline{Type: "headline", ID: id, To: bare})
	if err != nil {
		return false, err
	}
	s.probes.expect(id)
	defer s.probes.forget(id)
	if err := s.send(ctx, msg); err != nil {
		return false, err
	}
	// Any answer to the ping, an error included, comes after the bounce.
	var iqErr *IQError
	if _, err := s.request(ctx, "get", bare, elem(nsPing, "ping")); err != nil && !errors.As(err, &iqErr) {
		return false, fmt.Errorf("account probe: %w", err)
	}
	return !s.probes.wasBounced(id), nil
}

// isAccountProbe reports whether a message is the gateway's account probe.
func isAccountProbe(n xmlNode) bool { return n.child(nsAccountProbe, "probe") != nil }

// accountProbes are the probe ids a stream waits on and whether each
// bounced.
type accountProbes struct {
	mu      sync.Mutex
	pending map[string]bool // id -> bounced
}

func (p *accountProbes) expect(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending == nil {
		p.pending = map[string]bool{}
	}
	p.pending[id] = false
}

func (p *accountProbes) forget(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.pending, id)
}

func (p *accountProbes) wasBounced(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pending[id]
}

// bounced records an error message answering a pending probe, reporting
// whether it was one (then it is no event).
func (p *accountProbes) bounced(n xmlNode) bool {
	id := n.attr("id")
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.pending[id]; !ok || id == "" {
		return false
	}
	if e := n.child("", "error"); e != nil {
		if c := condition(e); c == "service-unavailable" || c == "item-not-found" {
			p.pending[id] = true
		}
	}
	return true
}
