package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// debugStats is what the gateway's /debug/memstats reports.
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
	debugURL string // the gateway's loopback debug listener
	done     chan struct{}
}

// startGateway runs the real xmppgw binary bin on a free loopback port
// against xmppAddr, with its loopback debug listener (pprof, memstats) on.
func startGateway(ctx context.Context, bin, xmppAddr, domain, logFile string, extra map[string]string) (*gatewayProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	debugPort, err := freePort()
	if err != nil {
		return nil, err
	}
	envs := map[string]string{
		"XMPPGW_LISTEN": "127.0.0.1:" + strconv.Itoa(port), "XMPPGW_DEBUG_LISTEN": "127.0.0.1:" + strconv.Itoa(debugPort), "XMPPGW_XMPP_ADDR": xmppAddr, "XMPPGW_XMPP_DOMAIN": domain,
		"XMPPGW_XMPP_TLS": "none", "XMPPGW_JWT_SECRET": "bench-secret-bench-secret-bench-secret!!",
		"XMPPGW_MAX_STREAMS": "100000", "XMPPGW_MAX_STREAMS_PER_USER": "1000", "XMPPGW_SENDS_PER_SECOND": "1000000",
		"XMPPGW_LOGIN_FAILURES_PER_USER": "1000000", "XMPPGW_LOGIN_FAILURES_PER_IP": "1000000",
		"XMPPGW_SSE_MAX_SUBSCRIBERS": "20000", "XMPPGW_LOGIN_TIMEOUT": "60s",
	}
	for k, v := range extra {
		envs[k] = v
	}
	if bin == "" {
		return nil, errors.New("-gateway-bin is required: build it with go build -o bin/xmppgw ./cmd/xmppgw")
	}
	cmd := exec.Command(bin)
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
	g := &gatewayProc{cmd: cmd, URL: "http://127.0.0.1:" + strconv.Itoa(port),
		debugURL: "http://127.0.0.1:" + strconv.Itoa(debugPort), done: make(chan struct{})}
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
	resp, err := http.Get(g.debugURL + "/debug/memstats")
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
