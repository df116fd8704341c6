// Package testxmpp starts the real XMPP server the integration tests run
// against: Prosody (internal/prosody, the default) or ejabberd
// (internal/ejabberd), chosen by XMPPGW_TEST_XMPP. Tests see one Server
// type whatever runs underneath, and ask it what differs (Kind) where the
// two servers legitimately behave differently.
package testxmpp

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppgw/xmppgw/internal/ejabberd"
	"github.com/xmppgw/xmppgw/internal/prosody"
)

// EnvVar selects the server: "prosody" (default when unset) or "ejabberd".
const EnvVar = "XMPPGW_TEST_XMPP"

// Kinds of server.
const (
	Prosody  = "prosody"
	Ejabberd = "ejabberd"
)

// KindFromEnv returns the server EnvVar selects.
func KindFromEnv() (string, error) {
	switch k := os.Getenv(EnvVar); k {
	case "", Prosody:
		return Prosody, nil
	case Ejabberd:
		return Ejabberd, nil
	default:
		return "", fmt.Errorf("%s=%q: want %q or %q", EnvVar, k, Prosody, Ejabberd)
	}
}

// Options configure Start.
type Options struct {
	Kind      string            // Prosody or Ejabberd; "" = KindFromEnv
	Dir       string            // working directory; "" = a temporary one, removed on Stop
	Users     map[string]string // username → password, created at start
	JWTSecret string            // on-behalf token logins (docs/admin-login.md) when non-empty
}

// Server is a running throwaway XMPP server. The fields are set by Start
// and never change (Restart keeps the ports).
type Server struct {
	Kind         string // Prosody or Ejabberd
	Version      string // as the server reports it ("" when unknown)
	Addr         string // 127.0.0.1:port of c2s (plaintext, STARTTLS offered)
	Domain       string
	MUCDomain    string
	PubSubDomain string
	Dir          string
	CertFile     string // self-signed certificate c2s offers for STARTTLS
	JWTSecret    string

	impl     backend
	prosody  *prosody.Server  // when Kind == Prosody
	ejabberd *ejabberd.Server // when Kind == Ejabberd
}

// backend is what both harnesses offer.
type backend interface {
	Register(ctx context.Context, user, password string) error
	Kill() error
	Restart(ctx context.Context) error
	Stop() error
	Running() bool
	LogTail(n int) string
}

// Start starts the server opts.Kind names.
func Start(ctx context.Context, opts Options) (*Server, error) {
	kind := opts.Kind
	if kind == "" {
		var err error
		if kind, err = KindFromEnv(); err != nil {
			return nil, err
		}
	}
	switch kind {
	case Prosody:
		p, err := prosody.Start(ctx, prosody.Options{Dir: opts.Dir, Users: opts.Users, JWTSecret: opts.JWTSecret})
		if err != nil {
			return nil, err
		}
		return &Server{Kind: kind, Version: prosodyVersion(), Addr: p.Addr, Domain: p.Domain, MUCDomain: p.MUCDomain,
			PubSubDomain: p.PubSubDomain, Dir: p.Dir, CertFile: p.CertFile, JWTSecret: p.JWTSecret,
			impl: p, prosody: p}, nil
	case Ejabberd:
		e, err := ejabberd.Start(ctx, ejabberd.Options{Dir: opts.Dir, Users: opts.Users, JWTSecret: opts.JWTSecret})
		if err != nil {
			return nil, err
		}
		return &Server{Kind: kind, Version: e.Version, Addr: e.Addr, Domain: e.Domain, MUCDomain: e.MUCDomain,
			PubSubDomain: e.PubSubDomain, Dir: e.Dir, CertFile: e.CertFile, JWTSecret: e.JWTSecret,
			impl: e, ejabberd: e}, nil
	}
	return nil, fmt.Errorf("testxmpp: unknown server kind %q", kind)
}

// prosodyVersion asks prosodyctl once per process (best effort: only for
// reports; ~0.2 s, too slow for every server a test starts).
var prosodyVersion = sync.OnceValue(func() string {
	out, err := exec.Command("prosodyctl", "about").CombinedOutput()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Prosody "); ok {
			return v
		}
	}
	return ""
})

// installHint says how to get a missing server.
func installHint(kind string) string {
	if kind == Ejabberd {
		return "ejabberd 23.01 from Debian is expected: `bash scripts/install-deps.sh ejabberd` (or `apt-get install -y ejabberd`)"
	}
	return "Prosody 0.12 from Debian is expected: run `make deps` or `apt-get install -y prosody`"
}

// ForTest starts a server for one test and stops it in t.Cleanup; with
// opts.Dir empty it uses t.TempDir(), so Kill and Restart keep the data.
// Any failure, a missing server included, fails the test: it never skips.
func ForTest(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("starting the XMPP server: %v\n(%s)", err, installHint(kindOr(opts.Kind)))
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log tail (%s):\n%s", s.Kind, s.Dir, s.LogTail(40))
		}
		if err := s.Stop(); err != nil {
			t.Errorf("stopping %s: %v", s.Kind, err)
		}
	})
	return s
}

// StartForMain is Start for a TestMain: it returns the server or an error
// that says how to install a missing one.
func StartForMain(opts Options) (*Server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("integration tests need a real XMPP server: %w\n(%s)", err, installHint(kindOr(opts.Kind)))
	}
	return s, nil
}

func kindOr(kind string) string {
	if kind == "" {
		kind, _ = KindFromEnv()
	}
	return kind
}

// Register creates user@Domain with password, or resets the password of
// an existing account.
func (s *Server) Register(ctx context.Context, user, password string) error {
	return s.impl.Register(ctx, user, password)
}

// Kill crashes the server (SIGKILL); Restart brings it back with its data.
func (s *Server) Kill() error { return s.impl.Kill() }

// Restart starts the server again on the same port with the same data.
func (s *Server) Restart(ctx context.Context) error { return s.impl.Restart(ctx) }

// Stop ends the server and removes a temporary directory. Idempotent.
func (s *Server) Stop() error { return s.impl.Stop() }

// Running reports whether the server process is alive.
func (s *Server) Running() bool { return s.impl.Running() }

// LogTail returns the server's last n log lines, for failure messages.
func (s *Server) LogTail(n int) string { return s.impl.LogTail(n) }

// JID returns user@Domain.
func (s *Server) JID(user string) string { return user + "@" + s.Domain }

// CreatePubSubNode creates node on the pubsub service with publisher (a
// bare JID) allowed to publish: on Prosody through its admin console
// (ordinary users may not create nodes on its pubsub component), on
// ejabberd by a create request sent as publisher through the HTTP API
// (local users may create nodes there; publisher becomes the owner).
func (s *Server) CreatePubSubNode(ctx context.Context, node, publisher string) error {
	if s.prosody != nil {
		return s.prosody.CreatePubSubNode(ctx, node, publisher)
	}
	type create struct {
		Node string `xml:"node,attr"`
	}
	type pubsub struct {
		XMLName xml.Name `xml:"http://jabber.org/protocol/pubsub pubsub"`
		Create  create   `xml:"create"`
	}
	type iq struct {
		XMLName xml.Name `xml:"jabber:client iq"`
		Type    string   `xml:"type,attr"`
		ID      string   `xml:"id,attr"`
		PubSub  pubsub
	}
	stanza, err := xml.Marshal(iq{Type: "set", ID: "harness-create", PubSub: pubsub{Create: create{Node: node}}})
	if err != nil {
		return err
	}
	return s.ejabberd.API(ctx, "send_stanza", map[string]string{
		"from": publisher, "to": s.PubSubDomain, "stanza": string(stanza),
	}, nil)
}
