// Package redistest runs a throwaway redis-server for tests: loopback only,
// a free port, no persistence unless asked (--save "" --appendonly no), its own working
// directory and its output kept for failure messages. Restart brings it back
// on the same port with empty data (what a Redis restarted without
// persistence looks like to the gateway); Pause/Resume (SIGSTOP/SIGCONT) and
// Kill simulate the outages of the cluster tests. Nothing depends on a
// system-wide Redis service.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/xmppgw/xmppgw/internal/childproc"
)

// ErrNotInstalled is returned by Start when redis-server is not on PATH.
var ErrNotInstalled = errors.New("redis-server is not installed: run `make deps` (scripts/install-deps.sh) or `apt-get install -y redis-server`")

const (
	// startTimeout bounds the wait for the first PONG unless ctx ends earlier.
	startTimeout = 10 * time.Second
	// stopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	stopTimeout   = 5 * time.Second
	probeInterval = 20 * time.Millisecond
	// portAttempts: how often Start picks a new free port when the picked
	// one was taken before redis-server could bind it.
	portAttempts = 5
	// logKeep is how many bytes of redis-server's output are kept.
	logKeep = 64 << 10
)

// Options configure Start.
type Options struct {
	Dir  string   // working dir (redis-server's --dir); "" = new temp dir, removed on Stop
	Port int      // port on 127.0.0.1; 0 = pick a free one
	Args []string // extra redis-server arguments, e.g. "--maxmemory", "10mb"
	// Persist turns the append-only file on, fsynced at every write: a
	// Kill and Restart then keep every acknowledged write (a Redis outage,
	// not a data loss).
	Persist bool
}

// Server is a redis-server process owned by this package. Its exported
// fields are set by Start and never change afterwards (Restart keeps the
// port).
type Server struct {
	Addr string // 127.0.0.1:port
	Port int
	URL  string // redis://127.0.0.1:port/0, for cluster.Open and XMPPGW_REDIS_URL
	Dir  string

	bin    string
	args   []string
	ownDir bool
	out    *tail

	mu      sync.Mutex // serialises Start/Stop/Kill/Restart/Pause/Resume
	proc    *childproc.Process
	paused  bool
	removed bool
}

// Start runs redis-server on 127.0.0.1 and returns once it answers PING.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNotInstalled
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("redistest: invalid port %d", opts.Port)
	}
	s := &Server{bin: bin, args: opts.Args, out: &tail{}}
	if opts.Persist {
		// Later arguments win: these override the defaults' "no".
		s.args = append([]string{"--appendonly", "yes", "--appendfsync", "always"}, opts.Args...)
	}
	if opts.Dir == "" {
		dir, err := os.MkdirTemp("", "redis-")
		if err != nil {
			return nil, fmt.Errorf("redistest: %w", err)
		}
		s.Dir, s.ownDir = dir, true
	} else {
		s.Dir = opts.Dir
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 1; ; attempt++ {
		port := opts.Port
		if port == 0 {
			if port, err = childproc.FreeLoopbackPort(); err != nil {
				return nil, s.failStart(fmt.Errorf("redistest: picking a port: %w", err))
			}
		}
		s.setPort(port)
		err = s.startLocked(ctx)
		if err == nil {
			return s, nil
		}
		if opts.Port == 0 && errors.Is(err, errPortInUse) && attempt < portAttempts {
			continue
		}
		return nil, s.failStart(err)
	}
}

func (s *Server) setPort(port int) {
	s.Port = port
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.URL = "redis://" + s.Addr + "/0"
}

func (s *Server) failStart(err error) error {
	if s.ownDir {
		_ = os.RemoveAll(s.Dir)
	}
	return err
}

var errPortInUse = errors.New("port in use")

// startLocked starts one run on s.Port and waits until it answers PING.
func (s *Server) startLocked(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redistest: start: %w", err)
	}
	// Whoever holds the port would answer the probe: check first.
	if l, err := net.Listen("tcp", s.Addr); err != nil {
		return fmt.Errorf("redistest: %w: %s: %v", errPortInUse, s.Addr, err)
	} else if err := l.Close(); err != nil {
		return fmt.Errorf("redistest: %w", err)
	}
	args := []string{
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1",
		// No persistence: a restart loses everything, which is the case the
		// cluster's epochs exist for.
		"--save", "", "--appendonly", "no",
		"--dir", s.Dir, "--logfile", "", "--daemonize", "no",
	}
	args = append(args, s.args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.Dir
	cmd.Stdout = s.out
	cmd.Stderr = s.out
	p, err := childproc.Start(cmd, nil)
	if err != nil {
		return fmt.Errorf("redistest: starting %s: %w", s.bin, err)
	}
	s.proc, s.paused = p, false
	if err := s.waitReady(ctx, p); err != nil {
		_ = s.stopLocked(false)
		return err
	}
	return nil
}

func (s *Server) waitReady(ctx context.Context, p *childproc.Process) error {
	deadline := time.Now().Add(startTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ticker := time.NewTicker(probeInterval)
	defer ticker.Stop()
	var err error
	for {
		if p.Exited() {
			log := s.out.String()
			if strings.Contains(log, "Address already in use") {
				return fmt.Errorf("redistest: %w: %s", errPortInUse, s.Addr)
			}
			return fmt.Errorf("redis-server exited during startup (%v); output:\n%s", p.Err(), lastLines(log, 20))
		}
		if err = Ping(ctx, s.Addr); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server not ready on %s (last probe: %v); output:\n%s", s.Addr, err, s.LogTail(20))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redistest: waiting for readiness: %w", ctx.Err())
		case <-p.Done():
		case <-ticker.C:
		}
	}
}

// Ping sends one PING to addr and expects +PONG (RESP simple string). It
// is the readiness probe and lets tests check reachability without a client.
func Ping(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// Stop terminates redis-server (SIGTERM, SIGKILL after 5 s) and removes the
// directory if Start created it. It is idempotent.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.stopLocked(true)
	if s.ownDir && !s.removed {
		s.removed = true
		if rmErr := os.RemoveAll(s.Dir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("redistest: %w", rmErr))
		}
	}
	return err
}

// Pid is the running redis-server's process id (0 when it is not running),
// for measuring its CPU.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.Exited() {
		return 0
	}
	return s.proc.Pid()
}

// Kill sends SIGKILL, as in a crash, and waits until the process is gone.
// Restart brings the server back (empty unless Options.Persist).
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(false)
}

// Restart kills redis-server if it runs and starts it again on the same
// port, returning once it answers PING. All data is gone afterwards,
// unless the server was started with Options.Persist.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.removed {
		return errors.New("redistest: Restart after Stop")
	}
	if err := s.stopLocked(false); err != nil {
		return err
	}
	return s.startLocked(ctx)
}

// Pause stops the process with SIGSTOP: connections stay open but nothing
// is answered, like a hung or partitioned Redis. Resume continues it.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP, true) }

// Resume continues a paused redis-server with SIGCONT.
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT, false) }

func (s *Server) signal(sig syscall.Signal, paused bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.Exited() {
		return errors.New("redistest: redis-server is not running")
	}
	if err := s.proc.Signal(sig); err != nil {
		return fmt.Errorf("redistest: %v: %w", sig, err)
	}
	s.paused = paused
	return nil
}

// Running reports whether the redis-server process is alive (paused counts).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.proc.Exited()
}

// LogTail returns the last n lines redis-server printed (across restarts).
func (s *Server) LogTail(n int) string { return lastLines(s.out.String(), n) }

// stopLocked ends the current run, if any; graceful sends SIGTERM first.
func (s *Server) stopLocked(graceful bool) error {
	p := s.proc
	if p == nil {
		return nil
	}
	if s.paused { // a stopped process handles SIGTERM only once continued
		p.SignalGroup(syscall.SIGCONT)
		s.paused = false
	}
	err := p.Stop(graceful, stopTimeout)
	if p.Exited() {
		s.proc = nil
	}
	if err != nil {
		return fmt.Errorf("redistest: redis-server: %w", err)
	}
	return nil
}

// tail keeps the last logKeep bytes written to it; safe for concurrent use
// (os/exec copies stdout and stderr from two goroutines).
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - logKeep; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if n < len(lines) {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
