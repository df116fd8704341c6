package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xmppgw/xmppgw/api"
	"github.com/xmppgw/xmppgw/gateway"
	"github.com/xmppgw/xmppgw/sse"
)

// runGatewayWrapper is `xmppgw-bench gateway`: the gateway wired exactly as
// cmd/xmppgw's main wires it (same packages, same options, JSON logs on
// stderr at info level), plus a second loopback listener with
// net/http/pprof and /debug/bench (goroutines and heap after a GC), which
// cmd/xmppgw does not expose. It reads the XMPPGW_* variables the bench
// sets; XMPPGW_XMPP_TLS must be none (loopback Prosody).
func runGatewayWrapper() int {
	env := func(k, def string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return def
	}
	num := func(k string, def int) int {
		n, err := strconv.Atoi(env(k, strconv.Itoa(def)))
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", k, err)
			os.Exit(2)
		}
		return n
	}
	dur := func(k, def string) time.Duration {
		d, err := time.ParseDuration(env(k, def))
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", k, err)
			os.Exit(2)
		}
		return d
	}
	if env("XMPPGW_XMPP_TLS", "none") != "none" {
		fmt.Fprintln(os.Stderr, "the bench gateway only speaks XMPPGW_XMPP_TLS=none to a loopback server")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var level slog.Level
	_ = level.UnmarshalText([]byte(env("XMPPGW_LOG_LEVEL", "info")))
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	secret := []byte(env("XMPPGW_JWT_SECRET", ""))
	if len(secret) < 32 {
		fmt.Fprintln(os.Stderr, "XMPPGW_JWT_SECRET: at least 32 bytes")
		return 2
	}
	broker := sse.NewBroker(sse.WithReplaySize(num("XMPPGW_SSE_REPLAY", 1024)), sse.WithQueueSize(num("XMPPGW_SSE_QUEUE", 256)),
		sse.WithHeartbeat(dur("XMPPGW_SSE_HEARTBEAT", "15s")), sse.WithMaxSubscribers(num("XMPPGW_SSE_MAX_SUBSCRIBERS", 16)),
		sse.WithLogger(log.With(slog.String("tag", "sse"))))
	mgr, err := gateway.NewManager(gateway.Config{Addr: env("XMPPGW_XMPP_ADDR", "127.0.0.1:5222"), Domain: env("XMPPGW_XMPP_DOMAIN", "localhost"),
		TLS: gateway.TLSNone, LoginTimeout: dur("XMPPGW_LOGIN_TIMEOUT", "15s"), IdleTimeout: dur("XMPPGW_STREAM_IDLE", "10m"),
		MaxStreams: num("XMPPGW_MAX_STREAMS", 10000), MaxStreamsPerUser: num("XMPPGW_MAX_STREAMS_PER_USER", 32)}, broker, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	srv := api.NewServer(api.Config{JWTSecret: secret, TokenTTL: dur("XMPPGW_TOKEN_TTL", "12h"),
		LoginFailuresPerUser: num("XMPPGW_LOGIN_FAILURES_PER_USER", 5), LoginFailuresPerIP: num("XMPPGW_LOGIN_FAILURES_PER_IP", 30),
		SendsPerSecond: num("XMPPGW_SENDS_PER_SECOND", 20), MaxMessageBytes: num("XMPPGW_MAX_MESSAGE_BYTES", 131072)}, mgr, broker, log)
	httpSrv := &http.Server{Handler: srv.Routes(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second}
	ln, err := net.Listen("tcp", env("XMPPGW_LISTEN", "127.0.0.1:8080"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() { _ = httpSrv.Serve(ln) }()

	dbg := http.NewServeMux()
	dbg.HandleFunc("/debug/pprof/", pprof.Index)
	dbg.HandleFunc("/debug/pprof/profile", pprof.Profile)
	dbg.HandleFunc("/debug/bench", func(w http.ResponseWriter, _ *http.Request) {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		_ = json.NewEncoder(w).Encode(debugStats{Goroutines: runtime.NumGoroutine(), HeapInuse: ms.HeapInuse,
			HeapAlloc: ms.HeapAlloc, StackInuse: ms.StackInuse, Sys: ms.Sys})
	})
	dln, err := net.Listen("tcp", env("BENCH_DEBUG_LISTEN", "127.0.0.1:0"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() { _ = http.Serve(dln, dbg) }()
	// The bench reads the ports from stdout.
	fmt.Printf("listening %s debug %s\n", ln.Addr(), dln.Addr())

	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = mgr.Close(sctx)
	broker.Close()
	_ = httpSrv.Shutdown(sctx)
	return 0
}

// debugStats is what /debug/bench reports.
type debugStats struct {
	Goroutines int    `json:"goroutines"`
	HeapInuse  uint64 `json:"heap_inuse"`
	HeapAlloc  uint64 `json:"heap_alloc"`
	StackInuse uint64 `json:"stack_inuse"`
	Sys        uint64 `json:"sys"`
}

// gatewayProc is a gateway subprocess under test.
type gatewayProc struct {
	cmd      *exec.Cmd
	URL      string // http://127.0.0.1:port
	debugURL string // "" for the real binary
	done     chan struct{}
}

// startGateway runs the gateway (this binary's wrapper, or bin when set) on
// a free loopback port against xmppAddr.
func startGateway(ctx context.Context, bin, xmppAddr, domain, logFile string, extra map[string]string) (*gatewayProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	envs := map[string]string{
		"XMPPGW_LISTEN": "127.0.0.1:" + strconv.Itoa(port), "XMPPGW_XMPP_ADDR": xmppAddr, "XMPPGW_XMPP_DOMAIN": domain,
		"XMPPGW_XMPP_TLS": "none", "XMPPGW_JWT_SECRET": "bench-secret-bench-secret-bench-secret!!",
		"XMPPGW_MAX_STREAMS": "100000", "XMPPGW_MAX_STREAMS_PER_USER": "1000", "XMPPGW_SENDS_PER_SECOND": "1000000",
		"XMPPGW_LOGIN_FAILURES_PER_USER": "1000000", "XMPPGW_LOGIN_FAILURES_PER_IP": "1000000",
		"XMPPGW_SSE_MAX_SUBSCRIBERS": "20000", "XMPPGW_LOGIN_TIMEOUT": "60s",
	}
	for k, v := range extra {
		envs[k] = v
	}
	var cmd *exec.Cmd
	if bin != "" {
		cmd = exec.Command(bin)
	} else {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cmd = exec.Command(self, "gateway")
	}
	cmd.Env = os.Environ()
	for k, v := range envs {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	lf, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = lf
	var out strings.Builder
	cmd.Stdout = &syncWriter{w: &out}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	g := &gatewayProc{cmd: cmd, URL: "http://127.0.0.1:" + strconv.Itoa(port), done: make(chan struct{})}
	go func() { _ = cmd.Wait(); lf.Close(); close(g.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-g.done:
			return nil, fmt.Errorf("gateway exited at start; see %s", logFile)
		default:
		}
		resp, err := http.Get(g.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			g.Kill()
			return nil, fmt.Errorf("gateway not healthy on %s; see %s", g.URL, logFile)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if bin == "" {
		for range 100 {
			if s := cmd.Stdout.(*syncWriter).String(); strings.Contains(s, " debug ") {
				f := strings.Fields(s)
				g.debugURL = "http://" + f[len(f)-1]
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return g, nil
}

// Kill stops the gateway at once (its streams' TCP connections close).
func (g *gatewayProc) Kill() {
	_ = g.cmd.Process.Kill()
	<-g.done
}

func (g *gatewayProc) Pid() int { return g.cmd.Process.Pid }

// Debug returns goroutines and heap after a GC (zero for the real binary).
func (g *gatewayProc) Debug() (debugStats, error) {
	var d debugStats
	if g.debugURL == "" {
		return d, nil
	}
	resp, err := http.Get(g.debugURL + "/debug/bench")
	if err != nil {
		return d, err
	}
	defer resp.Body.Close()
	return d, json.NewDecoder(resp.Body).Decode(&d)
}

// Profile saves a pprof profile (e.g. "profile?seconds=5", "heap",
// "goroutine") to path.
func (g *gatewayProc) Profile(what, path string) error {
	if g.debugURL == "" {
		return errors.New("no debug listener (real binary)")
	}
	resp, err := http.Get(g.debugURL + "/debug/pprof/" + what)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.ReadFrom(resp.Body)
	return err
}

// procStats reads RSS (bytes) and CPU time (user+system) of pid from /proc.
func procStats(pid int) (rss uint64, cpu time.Duration, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			rss = kb * 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// fields after "pid (comm)": state=0 ... utime=11 stime=12 (man 5 proc: 14, 15)
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return rss, time.Duration(ut+st) * time.Second / hz, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
