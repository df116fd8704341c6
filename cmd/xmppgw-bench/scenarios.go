package main

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	xmpp "github.com/xmppo/go-xmpp"
)

const benchPassword = "bench-pw"

// env is what every scenario needs: the XMPP server, the gateway under test.
type env struct {
	cfg      *config
	xmppAddr string
	domain   string
	prosody  string // Prosody's data dir (pidfile), "" when pointed at one
	workDir  string
	gw       *gatewayProc
	gwc      *gwClient
	gwLog    int // gateway restarts, for log file names

	// In the cluster scenario (cluster.go) gw is the node that owns the
	// streams (logins go there), requests are sent through sendVia and
	// event streams read through readVia, other nodes; the gateway's CPU is
	// that of gw and otherNodes, and redisPid's is reported beside it.
	sendVia, readVia *gwClient
	otherNodes       []*gatewayProc
	redisPid         int
}

// sender is the gateway that takes the REST sends.
func (e *env) sender() *gwClient {
	if e.sendVia != nil {
		return e.sendVia
	}
	return e.gwc
}

// reader is the gateway that serves the event streams.
func (e *env) reader() *gwClient {
	if e.readVia != nil {
		return e.readVia
	}
	return e.gwc
}

// gatewayCPU is the CPU time used so far by every gateway process of the
// path under test.
func (e *env) gatewayCPU() time.Duration {
	t := cpuOf(e.gw.Pid())
	for _, n := range e.otherNodes {
		t += cpuOf(n.Pid())
	}
	return t
}

func (e *env) restartGateway(ctx context.Context) error {
	if e.gw != nil {
		e.gw.Kill()
		e.gwc.close()
		e.gw = nil
		time.Sleep(e.cfg.settle) // let Prosody drop the killed sessions
	}
	e.gwLog++
	g, err := startGateway(ctx, e.cfg.gatewayBin, e.xmppAddr, e.domain,
		filepath.Join(e.workDir, fmt.Sprintf("gateway-%d.log", e.gwLog)), nil)
	if err != nil {
		return err
	}
	e.gw, e.gwc = g, newGWClient(g.URL)
	return nil
}

// parallel runs f(0..n-1) with at most conc at once; the first error wins.
func parallel(n, conc int, f func(i int) error) error {
	var wg sync.WaitGroup
	var first atomic.Pointer[error]
	sem := make(chan struct{}, max(conc, 1))
	for i := range n {
		if first.Load() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(i); err != nil {
				first.CompareAndSwap(nil, &err)
			}
		}()
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		return *p
	}
	return nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

// ---------- 1. throughput ----------

// ThroughputRun is one path's run: N senders → N receivers, at most
// Window messages in flight per pair (sent, not yet received).
type ThroughputRun struct {
	Path      string  `json:"path"` // gateway or direct
	Pairs     int     `json:"pairs"`
	Window    int     `json:"window"`
	Seconds   float64 `json:"seconds"`
	Sent      int64   `json:"sent"`
	Delivered int64   `json:"delivered"`
	MsgPerSec float64 `json:"msg_per_sec"`
	Errors    int64   `json:"errors"`
	Capped    bool    `json:"capped"` // stopped by max-msgs before the deadline
	// CPU time per delivered message during the measured window (µs).
	GatewayCPUus float64 `json:"gateway_cpu_us_per_msg"`
	ProsodyCPUus float64 `json:"prosody_cpu_us_per_msg"`
	BenchCPUus   float64 `json:"bench_cpu_us_per_msg"`           // this process: the clients
	RedisCPUus   float64 `json:"redis_cpu_us_per_msg,omitempty"` // cluster scenario only
	Load         string  `json:"loadavg"`
}

// cpu is the run's CPU per delivered message of each process.
func (r ThroughputRun) cpu() ProcessCPU {
	return ProcessCPU{Gateway: r.GatewayCPUus, Prosody: r.ProsodyCPUus, Bench: r.BenchCPUus, Redis: r.RedisCPUus}
}

// profileGatewayCPU writes a CPU profile of the gateway to dir/name,
// covering a run of length d (one second less, so it ends inside the run;
// at least one). The returned wait blocks until the profile is written.
func (e *env) profileGatewayCPU(dir, name string, d time.Duration) (wait func()) {
	var done sync.WaitGroup
	done.Go(func() {
		_ = e.gw.Profile(fmt.Sprintf("profile?seconds=%d", max(1, int(d.Seconds())-1)), filepath.Join(dir, name))
	})
	return done.Wait
}

// cpuOf returns the CPU time used so far by pid (0 when unknown).
func cpuOf(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	_, c, _ := procStats(pid)
	return c
}

func (e *env) prosodyPid() int {
	if e.prosody == "" {
		return 0
	}
	b, err := os.ReadFile(filepath.Join(e.prosody, "prosody.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func userName(prefix string, i int) string { return prefix + strconv.Itoa(i) }

// The paths a message can take in the throughput and latency scenarios.
const (
	pathGateway = "gateway" // REST POST → gateway → Prosody → gateway → SSE
	pathDirect  = "direct"  // plain go-xmpp client → Prosody → go-xmpp client
	// pathDirectLike is the like-for-like baseline: go-xmpp clients that do
	// the XMPP work every gateway stream does (carbons, roster, origin-id),
	// as chat clients and browser XMPP libraries do.
	pathDirectLike = "direct+"
)

func (e *env) throughput(ctx context.Context, path string, n, w int, d time.Duration) (ThroughputRun, error) {
	r := ThroughputRun{Path: path, Pairs: n, Window: w, Load: loadavg()}
	sems := make([]chan struct{}, n)
	for i := range sems {
		sems[i] = make(chan struct{}, w)
	}
	var delivered, sent, errs atomic.Int64
	onChat := func(i int) func(string, time.Time) {
		return func(string, time.Time) {
			delivered.Add(1)
			select {
			case <-sems[i]:
			default:
			}
		}
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	maxMsgs := e.cfg.maxMsgs
	acquire := func(i int) bool {
		select {
		case sems[i] <- struct{}{}:
			return sent.Add(1) <= maxMsgs
		case <-stop:
			return false
		}
	}
	switch path {
	case "gateway":
		snd, _, logoff, err := e.gatewayPairs(ctx, rctx, n, onChat)
		defer logoff()
		if err != nil {
			return r, err
		}
		to := make([]string, n)
		for i := range n {
			to[i] = userName("t", n+i) + "@" + e.domain
		}
		for i := range n {
			for range w {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for acquire(i) {
						if err := e.sender().send(snd[i], to[i], benchBody(sent.Load(), time.Now())); err != nil {
							errs.Add(1)
							<-sems[i]
						}
					}
				}()
			}
		}
	case pathDirect, pathDirectLike:
		like := path == pathDirectLike
		snd, rcv, closeAll, err := e.directPairs(n, "direct", like, onChat)
		defer closeAll()
		if err != nil {
			return r, err
		}
		for i := range n {
			to := rcv[i].jid
			if k := strings.IndexByte(to, '/'); k > 0 {
				to = to[:k]
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for acquire(i) {
					if _, err := directSend(snd[i].c, to, benchBody(sent.Load(), time.Now()), like); err != nil {
						errs.Add(1)
						<-sems[i]
					}
				}
			}()
		}
	}
	start := time.Now()
	warm := start.Add(e.cfg.warmup)
	time.Sleep(time.Until(warm))
	c0 := delivered.Load()
	gw0, pr0, me0, rd0 := e.gatewayCPU(), cpuOf(e.prosodyPid()), cpuOf(os.Getpid()), cpuOf(e.redisPid)
	time.Sleep(d)
	c1 := delivered.Load()
	gw1, pr1, me1, rd1 := e.gatewayCPU(), cpuOf(e.prosodyPid()), cpuOf(os.Getpid()), cpuOf(e.redisPid)
	t1 := time.Now()
	close(stop)
	wg.Wait()
	r.Seconds = t1.Sub(warm).Seconds()
	r.Delivered, r.Sent, r.Errors = c1-c0, min(sent.Load(), maxMsgs), errs.Load()
	r.Capped = sent.Load() >= maxMsgs
	r.MsgPerSec = float64(r.Delivered) / r.Seconds
	if r.Delivered > 0 {
		per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(r.Delivered) }
		r.GatewayCPUus, r.ProsodyCPUus, r.BenchCPUus, r.RedisCPUus = per(gw1-gw0), per(pr1-pr0), per(me1-me0), per(rd1-rd0)
		if path != pathGateway {
			r.GatewayCPUus = per(gw1 - gw0) // idle gateway, for reference
		}
	}
	return r, nil
}

// directSend sends a chat as go-xmpp does; for the like-for-like
// baseline (path direct+) the stanza also carries the XEP-0359 origin-id
// the gateway adds, so Prosody parses and archives the same shape.
func directSend(c *xmpp.Client, to, body string, like bool) (int, error) {
	if !like {
		return c.Send(xmpp.Chat{Remote: to, Type: "chat", Text: body})
	}
	id := strconv.FormatInt(directSeq.Add(1), 36) + "d"
	raw, err := xml.Marshal(originIDMessage{To: to, Type: "chat", ID: id, Body: body, OriginID: originID{ID: id}})
	if err != nil {
		return 0, err
	}
	return c.SendOrg(string(raw))
}

// originIDMessage is a chat with an XEP-0359 origin-id, marshalled by
// encoding/xml (the stream's default namespace, jabber:client, applies).
type originIDMessage struct {
	XMLName  xml.Name `xml:"message"`
	To       string   `xml:"to,attr"`
	Type     string   `xml:"type,attr"`
	ID       string   `xml:"id,attr"`
	Body     string   `xml:"body"`
	OriginID originID `xml:"urn:xmpp:sid:0 origin-id"`
}

type originID struct {
	ID string `xml:"id,attr"`
}

var directSeq atomic.Int64

// ---------- 2. latency ----------

// LatencyRun is one path's run at a fixed offered rate (open loop).
type LatencyRun struct {
	Path     string  `json:"path"`
	Rate     float64 `json:"offered_per_sec"`
	Sent     int64   `json:"sent"`
	Received int64   `json:"received"`
	Latency  Latency `json:"latency"`
	// ProsodyBusy is the share of one core Prosody used while the messages
	// were offered. Near 1 the offered rate is Prosody's capacity of the
	// moment (its cost per message drifts), and the latencies measure its
	// queue rather than the path.
	ProsodyBusy float64 `json:"prosody_core_busy"`
	// CPU per offered message of each process over the same window.
	CPU  ProcessCPU `json:"cpu_us_per_msg"`
	Load string     `json:"loadavg"`
}

func (e *env) latency(ctx context.Context, path string, n int, rate float64, d time.Duration) (LatencyRun, error) {
	r := LatencyRun{Path: path, Rate: rate, Load: loadavg()}
	var mu sync.Mutex
	lats := make([]time.Duration, 0, int(rate*d.Seconds())+16)
	var received atomic.Int64
	var warm time.Time
	onChat := func(body string, at time.Time) {
		_, sentAt, ok := parseBenchBody(body)
		if !ok {
			return
		}
		received.Add(1)
		if sentAt.Before(warm) {
			return
		}
		mu.Lock()
		lats = append(lats, at.Sub(sentAt))
		mu.Unlock()
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var dispatch func(i int)
	var wg sync.WaitGroup
	switch path {
	case "gateway":
		snd, _, logoff, err := e.gatewayPairs(ctx, rctx, n, func(int) func(string, time.Time) { return onChat })
		defer logoff()
		if err != nil {
			return r, err
		}
		inflight := make(chan struct{}, 4096)
		dispatch = func(i int) {
			select {
			case inflight <- struct{}{}:
			default:
				return // more than 4096 requests outstanding: the gateway is saturated
			}
			wg.Add(1)
			go func() {
				defer func() { <-inflight; wg.Done() }()
				_ = e.sender().send(snd[i%n], userName("t", n+i%n)+"@"+e.domain, benchBody(int64(i), time.Now()))
			}()
		}
	case pathDirect, pathDirectLike:
		like := path == pathDirectLike
		snd, _, closeAll, err := e.directPairs(n, "lat", like, func(int) func(string, time.Time) { return onChat })
		defer closeAll()
		if err != nil {
			return r, err
		}
		queues := make([]chan int, n)
		for i := range n {
			queues[i] = make(chan int, 4096)
			to := userName("t", n+i) + "@" + e.domain
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seq := range queues[i] {
					_, _ = directSend(snd[i].c, to, benchBody(int64(seq), time.Now()), like)
				}
			}()
		}
		dispatch = func(i int) {
			select {
			case queues[i%n] <- i:
			default:
			}
		}
		defer func() {
			for _, q := range queues {
				close(q)
			}
		}()
	}
	interval := time.Duration(float64(time.Second) / rate)
	cpu0 := e.cpuSnapshot()
	start := time.Now()
	warm = start.Add(e.cfg.warmup)
	end := warm.Add(d)
	var i int
	for {
		at := start.Add(time.Duration(i) * interval)
		if !at.Before(end) || int64(i) >= e.cfg.maxMsgs {
			break
		}
		if w := time.Until(at); w > 0 {
			time.Sleep(w)
		}
		dispatch(i)
		i++
	}
	r.Sent = int64(i)
	cpu1 := e.cpuSnapshot()
	r.ProsodyBusy = (cpu1[1] - cpu0[1]).Seconds() / time.Since(start).Seconds()
	r.CPU = cpuPer(cpu0, cpu1, i)
	// Let the tail arrive (bounded).
	for deadline := time.Now().Add(3 * time.Second); received.Load() < r.Sent && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	r.Received = received.Load()
	mu.Lock()
	r.Latency = latencyOf(lats)
	mu.Unlock()
	if path == "gateway" {
		wg.Wait()
	}
	return r, nil
}

// ---------- 3. scale ----------

// ScaleRun measures K idle streams, each with one SSE subscriber.
type ScaleRun struct {
	K                   int     `json:"k"`
	Reached             int     `json:"reached"`
	StopReason          string  `json:"stop_reason,omitempty"`
	DirectLoginsPerSec  float64 `json:"direct_logins_per_sec"`
	GatewayLoginsPerSec float64 `json:"gateway_logins_per_sec"`
	SubscribeSeconds    float64 `json:"subscribe_seconds"`
	// DirectSetupLoginsPerSec is the like-for-like baseline: go-xmpp
	// logins that also enable carbons and fetch the roster, as every
	// gateway stream does (and as chat clients do).
	DirectSetupLoginsPerSec float64 `json:"direct_setup_logins_per_sec"`
	// GatewayFirst: this run logged the gateway's streams in before the
	// direct clients.
	GatewayFirst bool `json:"gateway_first"`
	// CPU per login (µs) of each process during the login bursts: where a
	// login's cost lands, and whether the XMPP server is the bottleneck.
	DirectLoginCPU          ProcessCPU `json:"direct_login_cpu_us"`
	DirectSetupLoginCPU     ProcessCPU `json:"direct_setup_login_cpu_us"`
	GatewayLoginCPU         ProcessCPU `json:"gateway_login_cpu_us"`
	DirectHeapPerClient     float64    `json:"direct_client_heap_bytes"` // bench process: go-xmpp client + its reader
	DirectGoroutinesPerConn float64    `json:"direct_client_goroutines"`
	GWRSSPerStream          float64    `json:"gw_rss_bytes_per_stream"`
	GWHeapPerStream         float64    `json:"gw_heap_bytes_per_stream"`  // HeapInuse after GC
	GWStackPerStream        float64    `json:"gw_stack_bytes_per_stream"` // goroutine stacks
	GWGoroutinesPerStream   float64    `json:"gw_goroutines_per_stream"`
	GWIdleCPUPerStream      float64    `json:"gw_idle_cpu_us_per_sec_per_stream"`
	ProsodyRSSPerSession    float64    `json:"prosody_rss_bytes_per_session"`
	// Growth: throughput of both paths while the K streams stay open, and
	// each process's CPU per delivered message meanwhile (where the cost
	// of K open streams lands). The paths take turns going first, with
	// the login bursts' order.
	GWMsgPerSec     float64    `json:"gw_msg_per_sec_with_k_open"`
	DirectMsgPerSec float64    `json:"direct_msg_per_sec_with_k_open"`
	GWGrowthCPU     ProcessCPU `json:"gw_cpu_us_per_msg_with_k_open"`
	DirectGrowthCPU ProcessCPU `json:"direct_cpu_us_per_msg_with_k_open"`
	Load            string     `json:"loadavg"`
}

// ProcessCPU is CPU time (µs) per unit of work (a login, or a delivered
// message) of the gateway, Prosody and this process (the clients).
type ProcessCPU struct {
	Gateway float64 `json:"gateway"`
	Prosody float64 `json:"prosody"`
	Bench   float64 `json:"bench"`
	Redis   float64 `json:"redis,omitempty"` // cluster scenario only
}

// cpuSnapshot reads the CPU time used so far by the gateway (every node of
// a cluster), Prosody, this process and Redis.
func (e *env) cpuSnapshot() [4]time.Duration {
	return [4]time.Duration{e.gatewayCPU(), cpuOf(e.prosodyPid()), cpuOf(os.Getpid()), cpuOf(e.redisPid)}
}

// cpuPer turns two snapshots around n units of work into CPU per unit.
func cpuPer(before, after [4]time.Duration, n int) ProcessCPU {
	if n <= 0 {
		return ProcessCPU{}
	}
	per := func(i int) float64 { return float64((after[i] - before[i]).Microseconds()) / float64(n) }
	return ProcessCPU{Gateway: per(0), Prosody: per(1), Bench: per(2), Redis: per(3)}
}

func benchHeap() (heap, stack uint64, goroutines int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.StackInuse, runtime.NumGoroutine()
}

func (e *env) prosodyRSS() uint64 {
	pid := e.prosodyPid()
	if pid == 0 {
		return 0
	}
	rss, _, _ := procStats(pid)
	return rss
}

// directLogins logs K go-xmpp clients in (50 in parallel), with or without
// the session setup every gateway stream makes, and closes them again.
func (e *env) directLogins(ctx context.Context, k int, setup bool) (directBurst, error) {
	var b directBurst
	h0, st0, g0 := benchHeap()
	clients := make([]*directClient, k)
	cpu0 := e.cpuSnapshot()
	t0 := time.Now()
	err := parallel(k, e.cfg.loginConc, func(i int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, err := startDirect(e.xmppAddr, e.domain, userName("s", i), benchPassword, "direct", setup, nil)
		clients[i] = c
		return err
	})
	dt := time.Since(t0)
	b.CPU = cpuPer(cpu0, e.cpuSnapshot(), k)
	b.PerSec = float64(k) / dt.Seconds()
	h1, st1, g1 := benchHeap()
	b.HeapPerClient = (float64(h1+st1) - float64(h0+st0)) / float64(k)
	b.GoroutinesPerConn = float64(g1-g0) / float64(k)
	_ = parallel(k, 200, func(i int) error {
		if clients[i] != nil {
			clients[i].close()
		}
		return nil
	})
	time.Sleep(e.cfg.settle) // let Prosody finish the closed sessions
	return b, err
}

// directBurst is one burst of direct logins.
type directBurst struct {
	PerSec            float64
	CPU               ProcessCPU
	HeapPerClient     float64
	GoroutinesPerConn float64
}

// scale measures K gateway streams with an SSE subscriber each, against
// two bursts of K direct logins: plain go-xmpp, and go-xmpp making the
// session setup (carbons, roster) every gateway stream makes. Whatever
// goes first leaves Prosody work behind (closed sessions, garbage), so
// the order alternates with run: even runs start with the direct logins,
// odd runs with the gateway's.
func (e *env) scale(ctx context.Context, k int, profileDir string, run int) (ScaleRun, error) {
	r := ScaleRun{K: k, Load: loadavg(), GatewayFirst: run%2 == 1}
	conc := e.cfg.loginConc
	if err := e.restartGateway(ctx); err != nil {
		return r, err
	}
	prosody0 := e.prosodyRSS()

	baselines := func() bool {
		for _, setup := range []bool{run%4 >= 2, run%4 < 2} {
			b, err := e.directLogins(ctx, k, setup)
			if setup {
				r.DirectSetupLoginsPerSec, r.DirectSetupLoginCPU = b.PerSec, b.CPU
			} else {
				r.DirectLoginsPerSec, r.DirectLoginCPU = b.PerSec, b.CPU
				r.DirectHeapPerClient, r.DirectGoroutinesPerConn = b.HeapPerClient, b.GoroutinesPerConn
			}
			if err != nil {
				r.StopReason = "direct login: " + err.Error()
				return false
			}
		}
		return true
	}
	if !r.GatewayFirst && !baselines() {
		return r, nil
	}

	// Gateway: K logins, then one SSE subscriber each.
	d0, err := e.gw.Debug()
	if err != nil {
		return r, err
	}
	rss0, _, _ := procStats(e.gw.Pid())
	streams := make([]gwStream, k)
	var reached atomic.Int64
	profiled := make(chan struct{})
	if profileDir != "" { // CPU of the login burst (its first 3 s); the caller owns nothing after <-profiled
		go func() {
			defer close(profiled)
			_ = e.gw.Profile("profile?seconds=3", filepath.Join(profileDir, fmt.Sprintf("scale-%d-login-cpu.pprof", k)))
		}()
	} else {
		close(profiled)
	}
	cpu0 := e.cpuSnapshot()
	t0 := time.Now()
	err = parallel(k, conc, func(i int) error {
		s, err := e.gwc.login(ctx, userName("s", i), benchPassword)
		streams[i] = s
		if err == nil {
			reached.Add(1)
		}
		return err
	})
	dt := time.Since(t0)
	r.GatewayLoginCPU = cpuPer(cpu0, e.cpuSnapshot(), int(reached.Load()))
	<-profiled
	r.GatewayLoginsPerSec = float64(reached.Load()) / dt.Seconds()
	r.Reached = int(reached.Load())
	if err != nil {
		r.StopReason = "gateway login: " + err.Error()
		return r, nil
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t0 = time.Now()
	err = parallel(k, conc, func(i int) error {
		_, err := e.gwc.subscribe(sctx, streams[i], func(string, time.Time) {})
		return err
	})
	r.SubscribeSeconds = time.Since(t0).Seconds()
	if err != nil {
		r.StopReason = "subscribe: " + err.Error()
		return r, nil
	}
	time.Sleep(e.cfg.settle)
	d1, err := e.gw.Debug()
	if err != nil {
		return r, err
	}
	rss1, idle0, _ := procStats(e.gw.Pid())
	r.GWRSSPerStream = (float64(rss1) - float64(rss0)) / float64(k)
	r.GWHeapPerStream = (float64(d1.HeapInuse) - float64(d0.HeapInuse)) / float64(k)
	r.GWStackPerStream = (float64(d1.StackInuse) - float64(d0.StackInuse)) / float64(k)
	r.GWGoroutinesPerStream = float64(d1.Goroutines-d0.Goroutines) / float64(k)
	if p := e.prosodyRSS(); p > 0 && prosody0 > 0 {
		r.ProsodyRSSPerSession = (float64(p) - float64(prosody0)) / float64(k)
	}
	if profileDir != "" {
		_ = e.gw.Profile("heap", filepath.Join(profileDir, fmt.Sprintf("scale-%d-heap.pprof", k)))
		_ = e.gw.Profile("goroutine", filepath.Join(profileDir, fmt.Sprintf("scale-%d-goroutine.pprof", k)))
	}
	t1 := time.Now()
	time.Sleep(e.cfg.idle)
	_, cpu1, _ := procStats(e.gw.Pid())
	r.GWIdleCPUPerStream = float64((cpu1 - idle0).Microseconds()) / time.Since(t1).Seconds() / float64(k)

	// Growth: throughput of both paths with the K streams still open.
	if e.cfg.growthPairs > 0 {
		gateway := func() {
			profiled := func() {}
			if profileDir != "" { // the gateway's CPU with K streams open, while it moves messages
				profiled = e.profileGatewayCPU(profileDir, fmt.Sprintf("scale-%d-growth-cpu.pprof", k), e.cfg.growthDuration)
			}
			if g, err := e.throughput(ctx, pathGateway, e.cfg.growthPairs, e.cfg.window, e.cfg.growthDuration); err == nil {
				r.GWMsgPerSec, r.GWGrowthCPU = g.MsgPerSec, g.cpu()
			}
			profiled()
		}
		direct := func() {
			if d, err := e.throughput(ctx, pathDirect, e.cfg.growthPairs, e.cfg.window, e.cfg.growthDuration); err == nil {
				r.DirectMsgPerSec, r.DirectGrowthCPU = d.MsgPerSec, d.cpu()
			}
		}
		if r.GatewayFirst {
			gateway()
			direct()
		} else {
			direct()
			gateway()
		}
	}
	cancel()
	if err := e.restartGateway(ctx); err != nil { // Prosody drops the K streams
		return r, err
	}
	if r.GatewayFirst {
		baselines()
	}
	return r, nil
}

// ---------- 4. fan-out ----------

// FanoutRun: one event to S subscribers of one stream, repeated Msgs times.
type FanoutRun struct {
	S int `json:"s"`
	// Reader is how the bench reads the S streams: "epoll" (raw sockets,
	// GOMAXPROCS epoll loops) or "http" (net/http, a goroutine each); on
	// the room fan-out's direct path "go-xmpp" (each client its own).
	Reader       string  `json:"reader"`
	Msgs         int     `json:"msgs"`
	Complete     int     `json:"complete"` // messages every subscriber got
	ToLast       Latency `json:"to_last"`  // REST request start → last subscriber parsed it
	ToFirst      Latency `json:"to_first"`
	EventsPerSec float64 `json:"events_per_sec"` // S / median time-to-last
	// GatewayCPUus is gateway CPU per delivered event (µs); CPU time barely
	// depends on how busy the box is, unlike the wall-clock figures.
	GatewayCPUus float64 `json:"gateway_cpu_us_per_event"`
	// ClientsCPUus is this process's CPU per delivered event (µs): the S
	// subscribers reading and parsing, which share the box with the gateway.
	ClientsCPUus float64 `json:"clients_cpu_us_per_event"`
	Load         string  `json:"loadavg"`
}

func (e *env) fanout(ctx context.Context, s, msgs int, reader string) (FanoutRun, error) {
	r := FanoutRun{S: s, Msgs: msgs, Reader: reader, Load: loadavg()}
	target, err := e.gwc.login(ctx, "f0", benchPassword)
	if err != nil {
		return r, err
	}
	defer e.gwc.logoff(context.Background(), target)
	sender, err := e.gwc.login(ctx, "f1", benchPassword)
	if err != nil {
		return r, err
	}
	defer e.gwc.logoff(context.Background(), sender)
	a := newArrivals(msgs)
	subscribe, stop, err := fanoutSubscribers(ctx, e.gwc, reader, a.onChat, fmt.Sprintf("fanout S=%d %s", s, reader))
	if err != nil {
		return r, err
	}
	// stop ends every subscriber (goroutines exited, sockets closed) before
	// the deferred logoffs, so that a stream the gateway ended during the
	// run is told apart from the end of the run.
	defer stop()
	if err := parallel(s, e.cfg.loginConc, func(int) error { return subscribe(target) }); err != nil {
		return r, err
	}
	time.Sleep(200 * time.Millisecond)
	to := "f0@" + e.domain
	cpu0, me0 := cpuOf(e.gw.Pid()), cpuOf(os.Getpid())
	if err := e.fanoutRounds(&r, a, func(body string) error { return e.gwc.send(sender, to, body) }); err != nil {
		return r, err
	}
	if r.Complete > 0 {
		per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(r.Complete*s) }
		r.GatewayCPUus, r.ClientsCPUus = per(cpuOf(e.gw.Pid())-cpu0), per(cpuOf(os.Getpid())-me0)
	}
	return r, nil
}

// arrivals records, for each message of a fan-out run (its bench body's
// sequence number), how many subscribers parsed it and when the first and
// the last did (Unix ns).
type arrivals struct {
	counts, first, last []atomic.Int64
}

func newArrivals(msgs int) *arrivals {
	return &arrivals{counts: make([]atomic.Int64, msgs), first: make([]atomic.Int64, msgs), last: make([]atomic.Int64, msgs)}
}

// onChat is the subscribers' callback; bodies that are not this run's
// messages are ignored. It runs on many reader goroutines at once.
func (a *arrivals) onChat(body string, at time.Time) {
	seq, _, ok := parseBenchBody(body)
	if !ok || seq < 0 || seq >= int64(len(a.counts)) {
		return
	}
	ns := at.UnixNano()
	a.first[seq].CompareAndSwap(0, ns)
	for {
		old := a.last[seq].Load()
		if ns <= old || a.last[seq].CompareAndSwap(old, ns) {
			break
		}
	}
	a.counts[seq].Add(1)
}

// delivered is how many events the subscribers parsed so far, all messages
// together.
func (a *arrivals) delivered() int64 {
	var n int64
	for i := range a.counts {
		n += a.counts[i].Load()
	}
	return n
}

// fanoutRounds sends r.Msgs messages one at a time through send, which
// gets the bench body (sequence number and the REST request's start), and
// waits (at most 10 s) until r.S subscribers parsed each; after each it
// pauses -fanout-gap. It fills r's Complete, ToLast, ToFirst and
// EventsPerSec (r.S over the median time to last) from the messages every
// subscriber got.
func (e *env) fanoutRounds(r *FanoutRun, a *arrivals, send func(body string) error) error {
	var toLast, toFirst []time.Duration
	for m := range r.Msgs {
		t0 := time.Now()
		if err := send(benchBody(int64(m), t0)); err != nil {
			return err
		}
		for deadline := t0.Add(10 * time.Second); a.counts[m].Load() < int64(r.S) && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		if a.counts[m].Load() == int64(r.S) {
			r.Complete++
			toLast = append(toLast, time.Duration(a.last[m].Load()-t0.UnixNano()))
			toFirst = append(toFirst, time.Duration(a.first[m].Load()-t0.UnixNano()))
		}
		time.Sleep(e.cfg.fanoutGap)
	}
	r.ToLast, r.ToFirst = latencyOf(toLast), latencyOf(toFirst)
	if r.ToLast.P50 > 0 {
		r.EventsPerSec = float64(r.S) / (r.ToLast.P50 / 1000)
	}
	return nil
}

// fanoutSubscribers is readerSubscribers whose stop logs (with label)
// what went wrong instead of returning it, for a deferred call.
func fanoutSubscribers(ctx context.Context, g *gwClient, reader string, onChat func(string, time.Time), label string) (subscribe func(gwStream) error, stop func(), err error) {
	subscribeWith, stopErr, err := readerSubscribers(ctx, g, reader)
	if err != nil {
		return nil, nil, err
	}
	subscribe = func(s gwStream) error { return subscribeWith(s, onChat) }
	return subscribe, func() {
		if err := stopErr(); err != nil {
			logf("%s: %v", label, err)
		}
	}, nil
}

// readerSubscribers prepares SSE subscribers of g's gateway, read
// by reader: "epoll" (raw sockets on GOMAXPROCS epoll loops) or "http"
// (net/http, a goroutine each). subscribe opens one subscriber of a stream,
// which calls onChat for each chat or groupchat event with a bench body
// (from one goroutine at a time), and returns once its preamble arrived. stop ends them all
// (goroutines exited, sockets closed) and reports streams the gateway ended
// before; it must be called, also after a failed subscribe.
func readerSubscribers(ctx context.Context, g *gwClient, reader string) (subscribe func(s gwStream, onChat func(string, time.Time)) error, stop func() error, err error) {
	sctx, cancel := context.WithCancel(ctx)
	switch reader {
	case "epoll":
		rd, err := newEpollReader(sctx, g.base, runtime.GOMAXPROCS(0), epollReadBuf)
		if err != nil {
			cancel()
			return nil, nil, err
		}
		subscribe = func(s gwStream, onChat func(string, time.Time)) error { return rd.subscribe(sctx, s, onChat) }
		stop = func() error {
			defer cancel()
			return rd.close()
		}
		return subscribe, stop, nil
	case "http":
		var mu sync.Mutex
		var dones []<-chan error
		subscribe = func(s gwStream, onChat func(string, time.Time)) error {
			done, err := g.subscribe(sctx, s, onChat)
			if err == nil {
				mu.Lock()
				dones = append(dones, done)
				mu.Unlock()
			}
			return err
		}
		stop = func() error {
			cancel()
			mu.Lock()
			defer mu.Unlock()
			var early int
			var first error
			timeout := time.After(10 * time.Second)
			for _, d := range dones {
				select {
				case err := <-d:
					if err != nil {
						if early == 0 {
							first = err
						}
						early++
					}
				case <-timeout:
					return fmt.Errorf("http reader: subscribers still reading 10 s after the end of the run")
				}
			}
			if early > 0 {
				return fmt.Errorf("http reader: the gateway ended %d streams early: %w", early, first)
			}
			return nil
		}
		return subscribe, stop, nil
	}
	cancel()
	return nil, nil, fmt.Errorf("unknown fan-out reader %q", reader)
}

// gatewayPairs logs in n senders (t0..t(n-1)) and n receivers (tn..) on the
// gateway and subscribes each receiver i with onChat(i). The returned func
// logs them all off (also after an error).
func (e *env) gatewayPairs(ctx, rctx context.Context, n int, onChat func(i int) func(string, time.Time)) (snd, rcv []gwStream, logoff func(), err error) {
	snd, rcv = make([]gwStream, n), make([]gwStream, n)
	logoff = func() {
		for _, s := range append(snd, rcv...) {
			e.gwc.logoff(context.Background(), s)
		}
	}
	err = parallel(2*n, 16, func(j int) error {
		s, err := e.gwc.login(ctx, userName("t", j), benchPassword)
		if j < n {
			snd[j] = s
		} else {
			rcv[j-n] = s
		}
		return err
	})
	if err != nil {
		return snd, rcv, logoff, err
	}
	for i := range n {
		if _, err := e.reader().subscribe(rctx, rcv[i], onChat(i)); err != nil {
			return snd, rcv, logoff, err
		}
	}
	return snd, rcv, logoff, nil
}

// directPairs connects the same users directly with go-xmpp (resources
// prefix+j); receiver i calls onChat(i). The returned func closes them.
// With like, every client makes the gateway's session setup (carbons,
// roster).
func (e *env) directPairs(n int, prefix string, like bool, onChat func(i int) func(string, time.Time)) (snd, rcv []*directClient, closeAll func(), err error) {
	snd, rcv = make([]*directClient, n), make([]*directClient, n)
	closeAll = func() {
		for _, c := range append(snd, rcv...) {
			if c != nil {
				c.close()
			}
		}
	}
	err = parallel(2*n, 16, func(j int) error {
		var err error
		if j < n {
			snd[j], err = startDirect(e.xmppAddr, e.domain, userName("t", j), benchPassword, prefix+strconv.Itoa(j), like, nil)
		} else {
			rcv[j-n], err = startDirect(e.xmppAddr, e.domain, userName("t", j), benchPassword, prefix+strconv.Itoa(j), like, onChat(j-n))
		}
		return err
	})
	return snd, rcv, closeAll, err
}
