// Package ejabberd runs a throwaway ejabberd 23.01 (Debian package) for
// tests: its own config, Mnesia spool, certificate and log in one
// directory, c2s and a loopback-only HTTP API on random 127.0.0.1 ports, no
// s2s. The Erlang VM is started directly (`erl -s ejabberd`), not through
// ejabberdctl or the system service, so nothing depends on
// /etc/ejabberd or an Erlang distribution port. Accounts are created
// through ejabberd's HTTP API (mod_http_api register / change_password).
package ejabberd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xmppgw/xmppgw/internal/childproc"
	"github.com/xmppgw/xmppgw/internal/testcert"
)

// DefaultDomain is the XMPP domain used when Options.Domain is empty.
const DefaultDomain = "localhost"

// ErrNotInstalled is returned by Start when ejabberd or Erlang is missing.
var ErrNotInstalled = errors.New("ejabberd is not installed: run `bash scripts/install-deps.sh ejabberd` or `apt-get install -y ejabberd`")

const (
	// startTimeout bounds the wait for readiness (ejabberd starts in 1-3 s
	// on an idle 2-core machine, much slower when the machine is busy).
	startTimeout = 60 * time.Second
	// stopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	stopTimeout   = 10 * time.Second
	probeInterval = 50 * time.Millisecond
	// portAttempts: how often Start picks new free ports when a picked one
	// was taken before ejabberd could bind it.
	portAttempts = 5
)

// MinJWTSecretBytes matches internal/prosody: the gateway's token secret
// is at least this long.
const MinJWTSecretBytes = 32

var errPortInUse = errors.New("port in use")

// Options configure Start.
type Options struct {
	Dir    string            // working dir (config, spool, log, cert); "" = new temp dir, removed on Stop
	Domain string            // default DefaultDomain
	Users  map[string]string // username → password, created once the server runs
	// JWTSecret, when non-empty, adds ejabberd's own jwt auth
	// (auth_method [internal, jwt], jwt_key holding this secret as a JWK):
	// an HS256 JWT {jid, exp} is accepted as a SASL PLAIN password, as the
	// gateway's on-behalf logins need (docs/admin-login.md).
	JWTSecret string
}

// Server is an ejabberd process owned by this package. Its exported fields
// are set by Start and never change afterwards (Restart keeps the ports).
type Server struct {
	Addr         string // 127.0.0.1:port (c2s, plaintext with optional STARTTLS)
	Port         int
	APIAddr      string // 127.0.0.1:port of mod_http_api (loopback only)
	Domain       string
	MUCDomain    string // conference.<domain>
	PubSubDomain string // pubsub.<domain>
	SearchDomain string // vjud.<domain>: mod_vcard's XEP-0055 directory
	Dir          string // absolute
	ConfigFile   string // Dir/ejabberd.yml
	CertFile     string // Dir/cert.pem: self-signed, trust it via tls.Config.RootCAs
	KeyFile      string // Dir/key.pem
	LogFile      string // Dir/ejabberd.log (ejabberd's own log)
	JWTSecret    string
	// Version is what the server logged at start, e.g. "23.01-1".
	Version string

	apiPort int
	erlBin  string
	erlLibs string
	ownDir  bool
	http    *http.Client

	mu      sync.Mutex
	proc    *childproc.Process
	removed bool
	// lastWrite is when the last account change made through the harness
	// (UnixNano); atomic, as Start registers users while holding mu.
	lastWrite atomic.Int64
}

// durableAfter is how long ejabberd may hold an account change before it
// is on disk: Mnesia keeps accounts in disc_only (dets) tables, whose file
// writes Erlang delays by up to 2 s (file:open delayed_write). A SIGKILL
// within that window loses the change (measured: a password set 1.1 s
// before the kill was gone after the restart, one set 1.5 s before was
// kept).
const durableAfter = 2500 * time.Millisecond

// Start writes the configuration and certificate into opts.Dir, starts
// ejabberd in the foreground, waits until it is started and accepts c2s
// connections, and creates opts.Users.
func Start(ctx context.Context, opts Options) (*Server, error) {
	erlBin, erlLibs, err := lookup()
	if err != nil {
		return nil, err
	}
	domain := opts.Domain
	if domain == "" {
		domain = DefaultDomain
	}
	// No character check as in internal/prosody: the domain reaches
	// ejabberd only through the JSON encoder (config.go) and ejabberd
	// refuses a host that is no valid domain itself.
	if n := len(opts.JWTSecret); n > 0 && n < MinJWTSecretBytes {
		return nil, fmt.Errorf("ejabberd: JWTSecret is %d bytes, the gateway's needs at least %d", n, MinJWTSecretBytes)
	}
	s := &Server{
		Domain: domain, MUCDomain: "conference." + domain, PubSubDomain: "pubsub." + domain,
		SearchDomain: "vjud." + domain, JWTSecret: opts.JWTSecret,
		erlBin: erlBin, erlLibs: erlLibs, http: &http.Client{Timeout: 30 * time.Second},
	}
	if opts.Dir == "" {
		dir, err := os.MkdirTemp("", "ejabberd-")
		if err != nil {
			return nil, fmt.Errorf("ejabberd: %w", err)
		}
		s.Dir, s.ownDir = dir, true
	} else if s.Dir, err = filepath.Abs(opts.Dir); err != nil {
		return nil, fmt.Errorf("ejabberd: %w", err)
	}
	fail := func(err error) (*Server, error) {
		if s.ownDir {
			_ = os.RemoveAll(s.Dir)
		}
		return nil, err
	}
	if !printableASCII(s.Dir) {
		return fail(fmt.Errorf("ejabberd: directory %q: only printable ASCII paths go onto erl's command line", s.Dir))
	}
	s.ConfigFile, s.CertFile, s.KeyFile, s.LogFile = s.path("ejabberd.yml"), s.path("cert.pem"), s.path("key.pem"), s.path("ejabberd.log")
	if err := os.MkdirAll(s.path("spool"), 0o700); err != nil {
		return fail(fmt.Errorf("ejabberd: %w", err))
	}
	if err := s.writeFiles(); err != nil {
		return fail(err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 1; ; attempt++ {
		if s.Port, err = childproc.FreeLoopbackPort(); err == nil {
			s.apiPort, err = childproc.FreeLoopbackPort()
		}
		if err != nil {
			return fail(fmt.Errorf("ejabberd: picking a port: %w", err))
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
		s.APIAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.apiPort))
		text, err := s.configText()
		if err != nil {
			return fail(fmt.Errorf("ejabberd: config: %w", err))
		}
		if err := testcert.WriteFileAtomic(s.ConfigFile, text, 0o600); err != nil {
			return fail(fmt.Errorf("ejabberd: writing config: %w", err))
		}
		err = s.startLocked(ctx)
		if err == nil {
			break
		}
		if errors.Is(err, errPortInUse) && attempt < portAttempts {
			continue
		}
		return fail(err)
	}
	names := make([]string, 0, len(opts.Users))
	for u := range opts.Users {
		names = append(names, u)
	}
	sort.Strings(names)
	for _, u := range names {
		if err := s.register(ctx, u, opts.Users[u]); err != nil {
			_ = s.stopLocked(false)
			return fail(err)
		}
	}
	return s, nil
}

// lookup finds erl and the directory holding ejabberd's Erlang
// applications (Debian: /usr/lib/<triplet>/ejabberd-<version>).
func lookup() (erl, libs string, err error) {
	if _, err := exec.LookPath("ejabberdctl"); err != nil {
		return "", "", ErrNotInstalled
	}
	erl, err = exec.LookPath("erl")
	if err != nil {
		return "", "", ErrNotInstalled
	}
	found, _ := filepath.Glob("/usr/lib/*/ejabberd-*/ebin/ejabberd.app")
	if len(found) == 0 {
		return "", "", fmt.Errorf("%w (no /usr/lib/*/ejabberd-*/ebin/ejabberd.app)", ErrNotInstalled)
	}
	return erl, filepath.Dir(filepath.Dir(filepath.Dir(found[0]))), nil
}

// writeFiles writes the certificate (ejabberd wants certificate and key in
// one PEM file) and the JWK of the token secret.
func (s *Server) writeFiles() error {
	names := []string{s.Domain, s.MUCDomain, s.PubSubDomain, s.SearchDomain}
	if s.Domain != "localhost" {
		names = append(names, "localhost")
	}
	if err := testcert.Ensure(s.CertFile, s.KeyFile, names); err != nil {
		return fmt.Errorf("ejabberd: certificate: %w", err)
	}
	cert, err := os.ReadFile(s.CertFile)
	if err != nil {
		return fmt.Errorf("ejabberd: %w", err)
	}
	key, err := os.ReadFile(s.KeyFile)
	if err != nil {
		return fmt.Errorf("ejabberd: %w", err)
	}
	if err := testcert.WriteFileAtomic(s.pemFile(), append(cert, key...), 0o600); err != nil {
		return fmt.Errorf("ejabberd: %w", err)
	}
	if s.JWTSecret != "" {
		k, err := jwk(s.JWTSecret)
		if err != nil {
			return fmt.Errorf("ejabberd: %w", err)
		}
		if err := testcert.WriteFileAtomic(s.jwkFile(), k, 0o600); err != nil {
			return fmt.Errorf("ejabberd: %w", err)
		}
	}
	return nil
}

// JID returns user@Domain.
func (s *Server) JID(user string) string { return user + "@" + s.Domain }

// Register creates user@Domain with password, or resets the password of
// an existing account. ejabberd must be running.
func (s *Server) Register(ctx context.Context, user, password string) error {
	s.mu.Lock()
	removed, running := s.removed, s.proc != nil && !s.proc.Exited()
	s.mu.Unlock()
	if removed || !running {
		return fmt.Errorf("ejabberd: register %s: the server is not running", user)
	}
	return s.register(ctx, user, password)
}

// apiError is mod_http_api's error body.
type apiError struct {
	Status  string `json:"status"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// codeUserExists is ejabberd_admin's "already registered" error code.
const codeUserExists = 10090

func (s *Server) register(ctx context.Context, user, password string) error {
	if user == "" || password == "" {
		return fmt.Errorf("ejabberd: register %q: empty username or password", user)
	}
	err := s.API(ctx, "register", map[string]string{"user": user, "host": s.Domain, "password": password}, nil)
	var ae *apiError
	if errors.As(err, &ae) && ae.Code == codeUserExists {
		err = s.API(ctx, "change_password", map[string]string{"user": user, "host": s.Domain, "newpass": password}, nil)
	}
	s.lastWrite.Store(time.Now().UnixNano())
	return err
}

func (e *apiError) Error() string {
	return fmt.Sprintf("ejabberd API error %d: %s", e.Code, e.Message)
}

// API calls an ejabberd command through mod_http_api (POST /api/<command>,
// JSON arguments) and decodes its result into out (nil: ignore it).
func (s *Server) API(ctx context.Context, command string, args, out any) error {
	body, err := json.Marshal(args)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.APIAddr+"/api/"+command, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("ejabberd: %s: %w", command, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("ejabberd: %s: %w", command, err)
	}
	if res.StatusCode != http.StatusOK {
		ae := &apiError{}
		if json.Unmarshal(b, ae) == nil && ae.Status == "error" {
			return fmt.Errorf("ejabberd: %s: %w", command, ae)
		}
		return fmt.Errorf("ejabberd: %s: HTTP %d: %s", command, res.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("ejabberd: %s: decoding %q: %w", command, b, err)
		}
	}
	return nil
}

// LogTail returns the last n lines of ejabberd's log (across restarts),
// for test failure messages.
func (s *Server) LogTail(n int) string {
	b, err := os.ReadFile(s.LogFile)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Stop terminates ejabberd (SIGTERM, then SIGKILL) and removes the
// directory if Start created it. It is idempotent.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.stopLocked(true)
	if s.ownDir && !s.removed {
		s.removed = true
		if rmErr := os.RemoveAll(s.Dir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("ejabberd: %w", rmErr))
		}
	}
	return err
}

// Kill sends SIGKILL, as in a crash. Data stays in Dir; Restart brings
// the server back. Accounts created or changed through the harness survive:
// Kill first waits until durableAfter has passed since the last change
// (tests crash the server to exercise the gateway, not ejabberd's storage).
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if wait := time.Until(time.Unix(0, s.lastWrite.Load()).Add(durableAfter)); wait > 0 && s.proc != nil {
		time.Sleep(wait)
	}
	return s.stopLocked(false)
}

// Restart starts ejabberd again on the same ports with the same data,
// after Kill or Stop (gracefully stopping it first if it runs).
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.removed {
		return fmt.Errorf("ejabberd: Restart after Stop: the temporary directory %s was removed (use Kill, or set Options.Dir)", s.Dir)
	}
	if err := s.stopLocked(true); err != nil {
		return err
	}
	return s.startLocked(ctx)
}

// Running reports whether the ejabberd process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.proc.Exited()
}

func (s *Server) stopLocked(graceful bool) error {
	p := s.proc
	if p == nil {
		return nil
	}
	err := p.Stop(graceful, stopTimeout)
	if p.Exited() {
		s.proc = nil
	}
	if err != nil && !errors.Is(err, childproc.ErrIgnoredTerm) {
		return fmt.Errorf("ejabberd: %w", err)
	}
	return nil
}

// startedLine is ejabberd_app's "ejabberd 23.01-1 is started in the node
// nonode@nohost in 1.03s": every listener and module is up by then.
var startedLine = regexp.MustCompile(`ejabberd (\S+) is started in the node`)

// startLocked starts one run and waits for readiness.
func (s *Server) startLocked(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ejabberd: start: %w", err)
	}
	for _, addr := range []string{s.Addr, s.APIAddr} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("ejabberd: %w: %s: %v", errPortInUse, addr, err)
		}
		_ = l.Close()
	}
	logStart := fileSize(s.LogFile)
	out, err := os.OpenFile(s.path("erl.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("ejabberd: %w", err)
	}
	// No -sname: the node stays nonode@nohost, so it starts no epmd and
	// opens no distribution port. -mnesia dir keeps the spool in Dir.
	cmd := exec.Command(s.erlBin, "-noinput", "-noshell", "+K", "true",
		"-mnesia", "dir", erlString(s.path("spool")),
		"-env", "ERL_CRASH_DUMP_BYTES", "0",
		"-s", "ejabberd")
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "ERL_LIBS="+s.erlLibs, "HOME="+s.Dir,
		"EJABBERD_CONFIG_PATH="+s.ConfigFile, "EJABBERD_LOG_PATH="+s.LogFile)
	cmd.Stdout, cmd.Stderr = out, out
	p, err := childproc.Start(cmd, func() { _ = out.Close() })
	if err != nil {
		_ = out.Close()
		return fmt.Errorf("ejabberd: starting %s: %w", s.erlBin, err)
	}
	s.proc = p
	if err := s.waitReady(ctx, p, logStart); err != nil {
		_ = s.stopLocked(false)
		return err
	}
	return nil
}

func (s *Server) waitReady(ctx context.Context, p *childproc.Process, logStart int64) error {
	deadline := p.Started().Add(startTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ticker := time.NewTicker(probeInterval)
	defer ticker.Stop()
	for {
		if p.Exited() {
			return fmt.Errorf("ejabberd exited during startup (%v); log tail:\n%s\n%s", p.Err(), s.LogTail(30), tailFile(s.path("erl.out"), 10))
		}
		log := readFrom(s.LogFile, logStart)
		if strings.Contains(log, "Failed to start ejabberd") || strings.Contains(log, "[critical]") {
			if strings.Contains(log, "eaddrinuse") {
				return fmt.Errorf("ejabberd: %w; log tail:\n%s", errPortInUse, s.LogTail(20))
			}
			return fmt.Errorf("ejabberd failed to start; log tail:\n%s", s.LogTail(30))
		}
		if m := startedLine.FindStringSubmatch(log); m != nil {
			s.Version = m[1]
			c, err := net.DialTimeout("tcp", s.Addr, time.Second)
			if err == nil {
				_ = c.Close()
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ejabberd not ready on %s after %v; log tail:\n%s", s.Addr, time.Since(p.Started()).Round(time.Millisecond), s.LogTail(30))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ejabberd: waiting for readiness: %w", ctx.Err())
		case <-p.Done():
		case <-ticker.C:
		}
	}
}

func fileSize(name string) int64 {
	if fi, err := os.Stat(name); err == nil {
		return fi.Size()
	}
	return 0
}

// readFrom returns the file's content after offset (this run's log).
func readFrom(name string, offset int64) string {
	f, err := os.Open(name)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

func tailFile(name string, n int) string {
	f, err := os.Open(name)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func (s *Server) path(name string) string { return filepath.Join(s.Dir, name) }
func (s *Server) pemFile() string         { return s.path("server.pem") }
func (s *Server) jwkFile() string         { return s.path("jwt.jwk") }
