// Package prosody runs a throwaway Prosody 0.12 XMPP server for tests and
// local development: its own config, data, certificate and log in one
// directory, c2s on 127.0.0.1 only, no s2s, users registered with
// prosodyctl. Nothing depends on the system-wide Prosody service.
package prosody

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	prosodyauth "github.com/xmppgw/xmppgw/deploy/prosody"
	"github.com/xmppgw/xmppgw/internal/childproc"
	"github.com/xmppgw/xmppgw/internal/testcert"
)

// DefaultDomain is the XMPP domain used when Options.Domain is empty.
const DefaultDomain = "localhost"

// ErrNotInstalled is returned by Start when prosody or prosodyctl is not on PATH.
var ErrNotInstalled = errors.New("prosody is not installed: run `make deps` (scripts/install-deps.sh) or `apt-get install -y prosody`")

const (
	// startTimeout bounds the wait for readiness unless ctx ends earlier.
	startTimeout = 15 * time.Second
	// stopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	stopTimeout = 5 * time.Second
	// activationGrace: if a probe succeeds but the log never showed the
	// c2s activation line (another Prosody version?), accept after this.
	activationGrace = 2 * time.Second
	probeInterval   = 50 * time.Millisecond
	// wantNoFile is the RLIMIT_NOFILE soft limit Prosody gets (capped by the
	// hard limit) when it would otherwise get less than minNoFile.
	minNoFile  = 4096
	wantNoFile = 65536
	// portAttempts: how often Start picks a new free port when the picked one
	// was taken before Prosody could bind it.
	portAttempts = 5
)

var errPortInUse = errors.New("port in use")

// Options configure Start.
type Options struct {
	Dir    string            // working dir (config, data, logs, certs); "" = new temp dir, removed on Stop
	Domain string            // default DefaultDomain
	Port   int               // c2s port on 127.0.0.1; 0 = pick a free one
	Users  map[string]string // username → password, registered before start
	Log    io.Writer         // where Prosody's log goes (default: Dir/prosody.log)
	// JWTSecret, when non-empty, installs mod_auth_xmppgw_jwt
	// (deploy/prosody) as the auth provider: passwords work as with
	// internal_hashed, and an HS256 JWT {jid, exp} signed with this secret
	// is accepted as a SASL PLAIN password. At least MinJWTSecretBytes.
	JWTSecret string
}

// MinJWTSecretBytes is the shortest JWTSecret mod_auth_xmppgw_jwt accepts.
const MinJWTSecretBytes = 32

// Server is a Prosody process owned by this package. Its exported fields are
// set by Start and never change afterwards (Restart keeps the port).
type Server struct {
	Addr         string // 127.0.0.1:port (c2s, plaintext with optional STARTTLS)
	Port         int
	Domain       string
	MUCDomain    string // conference.<domain>
	PubSubDomain string // pubsub.<domain>
	Dir          string // absolute
	ConfigFile   string // Dir/prosody.cfg.lua, usable with `prosodyctl --config`
	CertFile     string // Dir/cert.pem: self-signed, trust it via tls.Config.RootCAs
	KeyFile      string // Dir/key.pem
	LogFile      string // Dir/prosody.log; "" when Options.Log is set
	JWTSecret    string // Options.JWTSecret: token logins are on when non-empty

	prosodyBin string
	ctlBin     string
	logDest    io.Writer // Options.Log
	ownDir     bool
	ring       *logRing

	mu      sync.Mutex         // serialises Start/Stop/Kill/Restart
	proc    *childproc.Process // current run; nil when none was started since the last Stop/Kill
	removed bool               // Stop removed the temporary directory
}

// Start writes the configuration and certificate into opts.Dir, registers
// opts.Users and starts Prosody in the foreground, returning once it offers
// SASL mechanisms on Addr.
func Start(ctx context.Context, opts Options) (*Server, error) {
	prosodyBin, err := exec.LookPath("prosody")
	if err != nil {
		return nil, ErrNotInstalled
	}
	ctlBin, err := exec.LookPath("prosodyctl")
	if err != nil {
		return nil, ErrNotInstalled
	}
	domain := opts.Domain
	if domain == "" {
		domain = DefaultDomain
	}
	if err := checkDomain(domain); err != nil {
		return nil, err
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("prosody: invalid port %d", opts.Port)
	}
	if n := len(opts.JWTSecret); n > 0 && n < MinJWTSecretBytes {
		// mod_auth_xmppgw_jwt would refuse to load; say so before starting.
		return nil, fmt.Errorf("prosody: JWTSecret is %d bytes, mod_auth_xmppgw_jwt needs at least %d", n, MinJWTSecretBytes)
	}

	s := &Server{
		Domain:       domain,
		MUCDomain:    "conference." + domain,
		PubSubDomain: "pubsub." + domain,
		JWTSecret:    opts.JWTSecret,
		prosodyBin:   prosodyBin,
		ctlBin:       ctlBin,
		logDest:      opts.Log,
		ring:         newLogRing(),
	}
	if opts.Dir == "" {
		dir, err := os.MkdirTemp("", "prosody-")
		if err != nil {
			return nil, fmt.Errorf("prosody: %w", err)
		}
		s.Dir, s.ownDir = dir, true
	} else {
		dir, err := filepath.Abs(opts.Dir)
		if err != nil {
			return nil, fmt.Errorf("prosody: %w", err)
		}
		s.Dir = dir
	}
	fail := func(err error) (*Server, error) {
		if s.ownDir {
			_ = os.RemoveAll(s.Dir)
		}
		return nil, err
	}
	s.ConfigFile = s.path("prosody.cfg.lua")
	s.CertFile = s.path("cert.pem")
	s.KeyFile = s.path("key.pem")
	if opts.Log == nil {
		s.LogFile = s.path("prosody.log")
	}
	for _, d := range []string{s.Dir, s.path("data"), s.path("certs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fail(fmt.Errorf("prosody: %w", err))
		}
	}
	names := []string{domain, s.MUCDomain, s.PubSubDomain}
	if domain != "localhost" {
		names = append(names, "localhost")
	}
	if err := testcert.Ensure(s.CertFile, s.KeyFile, names); err != nil {
		return fail(fmt.Errorf("prosody: certificate: %w", err))
	}
	if s.JWTSecret != "" {
		if err := os.MkdirAll(s.pluginDir(), 0o755); err != nil {
			return fail(fmt.Errorf("prosody: %w", err))
		}
		if err := testcert.WriteFileAtomic(filepath.Join(s.pluginDir(), prosodyauth.FileName), prosodyauth.Module, 0o644); err != nil {
			return fail(fmt.Errorf("prosody: installing %s: %w", prosodyauth.FileName, err))
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 1; ; attempt++ {
		port := opts.Port
		if port == 0 {
			if port, err = childproc.FreeLoopbackPort(); err != nil {
				return fail(fmt.Errorf("prosody: picking a port: %w", err))
			}
		}
		s.Port = port
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := testcert.WriteFileAtomic(s.ConfigFile, []byte(s.configText()), s.configMode()); err != nil {
			return fail(fmt.Errorf("prosody: writing config: %w", err))
		}
		if attempt == 1 {
			if err := s.registerAll(ctx, opts.Users); err != nil {
				return fail(err)
			}
		}
		err = s.startLocked(ctx)
		if err == nil {
			return s, nil
		}
		if opts.Port == 0 && errors.Is(err, errPortInUse) && attempt < portAttempts {
			continue
		}
		return fail(err)
	}
}

func (s *Server) registerAll(ctx context.Context, users map[string]string) error {
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	sort.Strings(names)
	for _, u := range names {
		if err := s.register(ctx, u, users[u]); err != nil {
			return err
		}
	}
	return nil
}

// Register creates user@Domain with password, or resets the password of an
// existing account. It works while Prosody runs or is stopped.
func (s *Server) Register(ctx context.Context, user, password string) error {
	s.mu.Lock()
	removed := s.removed
	s.mu.Unlock()
	if removed {
		return fmt.Errorf("prosody: register %s: server was stopped and %s removed", user, s.Dir)
	}
	return s.register(ctx, user, password)
}

func (s *Server) register(ctx context.Context, user, password string) error {
	if user == "" || password == "" {
		return fmt.Errorf("prosody: register %q: empty username or password", user)
	}
	// adduser and passwd read the password (twice) from standard input, so
	// it never appears on a command line other local users can read in ps
	// (`prosodyctl register USER HOST PASSWORD` would put it there).
	err := s.ctlWithPassword(ctx, "adduser", user, password)
	if errors.Is(err, errUserExists) {
		err = s.ctlWithPassword(ctx, "passwd", user, password)
	}
	return err
}

// errUserExists is prosodyctl adduser's refusal for an existing account.
var errUserExists = errors.New("prosody: user exists")

// ctlWithPassword runs `prosodyctl adduser|passwd user@Domain`, answering
// its two password prompts on standard input.
func (s *Server) ctlWithPassword(ctx context.Context, verb, user, password string) error {
	if strings.ContainsAny(password, "\r\n") {
		return fmt.Errorf("prosody: %s %q: password contains a line break", verb, user)
	}
	cmd := exec.CommandContext(ctx, s.ctlBin, "--config", s.ConfigFile, verb, s.JID(user))
	cmd.Dir = s.Dir
	cmd.Stdin = strings.NewReader(password + "\n" + password + "\n")
	out, err := cmd.CombinedOutput()
	if verb == "adduser" && strings.Contains(string(out), "already exists") {
		return errUserExists
	}
	if err != nil {
		return fmt.Errorf("prosody: prosodyctl %s %s: %v: %s", verb, s.JID(user), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// JID returns user@Domain.
func (s *Server) JID(user string) string { return user + "@" + s.Domain }

// LogTail returns the last n lines Prosody wrote (across restarts), for
// test failure messages.
func (s *Server) LogTail(n int) string { return s.ring.tail(n) }

// Stop terminates Prosody (SIGTERM, then SIGKILL after 5 s) and removes
// the directory if Start created it. It is idempotent. With a directory
// given in Options.Dir, Restart may follow.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.stopLocked(true)
	if s.ownDir && !s.removed {
		s.removed = true
		if rmErr := os.RemoveAll(s.Dir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("prosody: %w", rmErr))
		}
	}
	return err
}

// Kill sends SIGKILL to Prosody at once, as in a crash, and waits until it
// is gone. Data stays in Dir; Restart brings the server back.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(false)
}

// Restart starts Prosody again with the same port, directory and data,
// after Kill or Stop (or gracefully stops it first if it is running), and
// waits until it is ready. After Stop of a server whose directory Start
// created, the data is gone and Restart fails.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.removed {
		return fmt.Errorf("prosody: Restart after Stop: the temporary directory %s was removed (use Kill, or set Options.Dir)", s.Dir)
	}
	if err := s.stopLocked(true); err != nil {
		return err
	}
	return s.startLocked(ctx)
}

// Running reports whether the Prosody process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.proc.Exited()
}

// stopLocked ends the current run, if any. graceful sends SIGTERM first.
func (s *Server) stopLocked(graceful bool) error {
	p := s.proc
	if p == nil {
		return nil
	}
	err := p.Stop(graceful, stopTimeout)
	if p.Exited() {
		s.proc = nil
	}
	switch {
	case errors.Is(err, childproc.ErrIgnoredTerm):
		return fmt.Errorf("prosody: %w; log tail:\n%s", err, s.LogTail(20))
	case err != nil:
		return fmt.Errorf("prosody: %w", err)
	}
	return nil
}

// noFileScript raises the soft RLIMIT_NOFILE for Prosody only (Go restores
// the original limit for children, often 1024), then execs it.
var noFileScript = `n=$(ulimit -n)
if [ "$n" != unlimited ] && [ "$n" -lt ` + strconv.Itoa(minNoFile) + ` ]; then
  h=$(ulimit -H -n)
  if [ "$h" = unlimited ] || [ "$h" -ge ` + strconv.Itoa(wantNoFile) + ` ]; then h=` + strconv.Itoa(wantNoFile) + `; fi
  ulimit -n "$h" 2>/dev/null || true
fi
exec "$0" "$@"`

// startLocked starts one run of Prosody on s.Port and waits for readiness.
func (s *Server) startLocked(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("prosody: start: %w", err)
	}
	// Prosody keeps running when its port is taken, and whoever holds it
	// would answer the probe: check first.
	if l, err := net.Listen("tcp", s.Addr); err != nil {
		return fmt.Errorf("prosody: %w: %s: %v", errPortInUse, s.Addr, err)
	} else if err := l.Close(); err != nil {
		return fmt.Errorf("prosody: %w", err)
	}

	var dest io.Writer = s.logDest
	var logFile *os.File
	if dest == nil {
		f, err := os.OpenFile(s.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("prosody: log file: %w", err)
		}
		logFile, dest = f, f
	}
	out := teeWriter{ring: s.ring, dest: dest}

	cmd := exec.Command("/bin/sh", "-c", noFileScript, s.prosodyBin, "-F", "--config", s.ConfigFile)
	cmd.Dir = s.Dir
	cmd.Stdout = out
	cmd.Stderr = out
	before := s.ring.counters()
	closeLog := func() {
		if logFile != nil {
			_ = logFile.Close()
		}
	}
	p, err := childproc.Start(cmd, func() {
		s.ring.flush()
		closeLog()
	})
	if err != nil {
		closeLog()
		return fmt.Errorf("prosody: starting %s: %w", s.prosodyBin, err)
	}
	s.proc = p

	if err := s.waitReady(ctx, p, before); err != nil {
		_ = s.stopLocked(false)
		return err
	}
	return nil
}

func (s *Server) waitReady(ctx context.Context, p *childproc.Process, before logCounts) error {
	deadline := p.Started().Add(startTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ticker := time.NewTicker(probeInterval)
	defer ticker.Stop()
	for {
		if p.Exited() {
			return fmt.Errorf("prosody exited during startup (%v); log tail:\n%s", p.Err(), s.LogTail(30))
		}
		now := s.ring.counters()
		if now.portFailures > before.portFailures {
			return fmt.Errorf("prosody: %w: could not bind %s; log tail:\n%s", errPortInUse, s.Addr, s.LogTail(30))
		}
		// Prosody keeps running without an auth provider (every login
		// fails): treat that as a failed start. The error line precedes the
		// c2s activation line, so it is counted before readiness is seen.
		if now.authErrors > before.authErrors {
			return fmt.Errorf("prosody: the authentication module failed to load; log tail:\n%s", s.LogTail(30))
		}
		err := probe(ctx, s.Addr, s.Domain, deadline)
		if err == nil && (now.c2sActive > before.c2sActive || time.Since(p.Started()) > activationGrace) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("prosody not ready on %s after %v (last probe: %v); log tail:\n%s",
				s.Addr, time.Since(p.Started()).Round(time.Millisecond), err, s.LogTail(30))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("prosody: waiting for readiness: %w; log tail:\n%s", ctx.Err(), s.LogTail(30))
		case <-p.Done():
		case <-ticker.C:
		}
	}
}

// streamHeader opens a client stream; domain must have passed checkDomain.
func streamHeader(domain string) string {
	return "<?xml version='1.0'?><stream:stream to='" + domain +
		"' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
}

// probe opens a client stream and succeeds once the stream features list
// SASL mechanisms (the TCP port opens before the host is loaded).
func probe(ctx context.Context, addr, domain string, deadline time.Time) error {
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	dl := time.Now().Add(2 * time.Second)
	if deadline.Before(dl) {
		dl = deadline
	}
	if err := conn.SetDeadline(dl); err != nil {
		return err
	}
	if _, err := io.WriteString(conn, streamHeader(domain)); err != nil {
		return err
	}
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		got = append(got, buf[:n]...)
		switch {
		case strings.Contains(string(got), "<mechanisms"):
			closeStream(conn)
			return nil
		case strings.Contains(string(got), "<stream:error"):
			return fmt.Errorf("stream error: %s", got)
		case err != nil:
			return fmt.Errorf("reading stream features: %w (got %q)", err, got)
		}
	}
}

// closeStream ends the stream and waits briefly for the server to close
// its side, so Prosody drops the session at once (a session left open
// delays its shutdown by up to a second).
func closeStream(conn net.Conn) {
	if _, err := io.WriteString(conn, "</stream:stream>"); err != nil {
		return
	}
	_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, _ = io.Copy(io.Discard, conn)
}

// checkDomain accepts plain DNS names (lower case), which are safe to put
// into XML attributes and file names as they are.
func checkDomain(d string) error {
	if len(d) > 253 || d == "" || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || strings.Contains(d, "..") {
		return fmt.Errorf("prosody: invalid domain %q", d)
	}
	for _, c := range d {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("prosody: invalid domain %q (use lower-case letters, digits, '-' and '.')", d)
		}
	}
	return nil
}

func (s *Server) path(name string) string { return filepath.Join(s.Dir, name) }

// pluginDir holds mod_auth_xmppgw_jwt.lua when JWTSecret is set.
func (s *Server) pluginDir() string { return s.path("plugins") }

// configMode keeps a config that holds the JWT secret private.
func (s *Server) configMode() os.FileMode {
	if s.JWTSecret != "" {
		return 0o600
	}
	return 0o644
}
