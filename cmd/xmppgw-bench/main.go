// Command xmppgw-bench measures the gateway against talking XMPP directly,
// in the same run and through the same Prosody: throughput, latency, scale
// (memory, goroutines, logins, idle CPU per stream) and SSE fan-out. Every
// scenario is bounded (duration and message count) and stops by itself;
// everything listens on 127.0.0.1 only.
//
//	xmppgw-bench [flags]            run the scenarios, print a table, write JSON/Markdown
//	xmppgw-bench gateway            (internal) the gateway under test, see gateway.go
//
// See docs/BENCHMARKS.md for the commands and the results.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xmppgw/xmppgw/internal/prosody"
)

type config struct {
	runs            int
	scaleRuns       int
	pairs           []int
	window          int
	duration        time.Duration
	warmup          time.Duration
	maxMsgs         int64
	latencyRate     float64
	latencyPairs    int
	latencyDur      time.Duration
	scale           []int
	idle            time.Duration
	settle          time.Duration
	loginConc       int
	fanout          []int
	fanoutReaders   []string // "epoll", "http": each fan-out size is run with each
	fanoutMsgs      int
	fanoutGap       time.Duration
	saturated       []SaturatedLoad // fan-out-saturated sizes
	saturatedDur    time.Duration
	roomFanout      []int // room fan-out: members M per room; none = off
	growthPairs     int
	growthDuration  time.Duration
	scenarios       map[string]bool
	jsonOut         string
	mdOut           string
	profileDir      string
	gatewayBin      string
	xmppAddr        string
	workParent      string
	smoke           bool
	takeoverStreams int
	baselines       []string // pathDirect and/or pathDirectLike
	maxTotal        time.Duration
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseFlags(args []string) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("xmppgw-bench", flag.ContinueOnError)
	pairs := fs.String("pairs", "8", "throughput: comma-separated numbers of sender→receiver pairs")
	scale := fs.String("scale", "1000", "scale: comma-separated stream counts K")
	fan := fs.String("fanout", "1,100,1000,10000", "fan-out: comma-separated subscriber counts S on one stream")
	roomFan := fs.String("room-fanout", "", "room fan-out (4b): comma-separated member counts M of one MUC room, every member a gateway stream with one subscriber, against the same with M go-xmpp clients (none: off); uses -fanout-msgs, -fanout-gap and, for the gateway path, -fanout-reader")
	reader := fs.String("fanout-reader", defaultFanoutReader, "fan-out: how the bench reads the S streams: epoll (raw sockets on GOMAXPROCS epoll loops, Linux only) or http (net/http, a goroutine per subscriber); comma-separated runs each, e.g. epoll,http")
	sat := fs.String("saturated", "5000@50,1000@500", "fan-out-saturated: comma-separated S@rate, S subscribers of one stream offered rate events/s (more deliveries than the box makes, so a backlog builds)")
	fs.DurationVar(&c.saturatedDur, "saturated-duration", 4*time.Second, "fan-out-saturated: how long events are offered per run")
	scen := fs.String("scenarios", "throughput,latency,fanout,fanout-saturated,roomfanout,scale,cluster,takeover", "which scenarios to run (roomfanout only with -room-fanout sizes; cluster: single node against three nodes on one redis-server, the largest -pairs, -latency-rate; takeover: -takeover-streams on a node that is killed)")
	fs.IntVar(&c.takeoverStreams, "takeover-streams", 1000, "takeover: streams on the node that is killed")
	fs.IntVar(&c.runs, "runs", 3, "runs of every scenario (median and spread are reported)")
	fs.IntVar(&c.scaleRuns, "scale-runs", 0, "runs of the scale scenario (0: -runs); its login bursts alternate their order, so an even number balances it")
	fs.IntVar(&c.window, "window", 16, "throughput: messages in flight per pair (sent, not yet received)")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "throughput: measured time per run and path")
	fs.DurationVar(&c.warmup, "warmup", 500*time.Millisecond, "excluded start of every throughput/latency run")
	fs.Int64Var(&c.maxMsgs, "max-msgs", 200000, "upper bound of messages per run and path")
	fs.Float64Var(&c.latencyRate, "latency-rate", 0, "latency: offered msg/s (0 = half the direct throughput measured in this run)")
	fs.IntVar(&c.latencyPairs, "latency-pairs", 8, "latency: sender→receiver pairs the offered rate is spread over")
	fs.DurationVar(&c.latencyDur, "latency-duration", 5*time.Second, "latency: measured time per run and path")
	fs.DurationVar(&c.idle, "idle", 15*time.Second, "scale: window over which idle CPU is measured (heartbeats are every 15 s)")
	fs.DurationVar(&c.settle, "settle", 2*time.Second, "scale: pause after logins before memory is read")
	fs.IntVar(&c.loginConc, "login-concurrency", 50, "parallel logins and subscriptions")
	fs.IntVar(&c.fanoutMsgs, "fanout-msgs", 20, "fan-out: events per run")
	fs.DurationVar(&c.fanoutGap, "fanout-gap", 50*time.Millisecond, "fan-out: pause after each event was delivered everywhere")
	fs.IntVar(&c.growthPairs, "growth-pairs", 8, "scale: pairs of the throughput run done with K streams open (0 = skip)")
	fs.DurationVar(&c.growthDuration, "growth-duration", 3*time.Second, "scale: duration of that run")
	fs.StringVar(&c.jsonOut, "json", "", "write the results as JSON to this file")
	fs.StringVar(&c.mdOut, "md", "", "replace the generated section of this Markdown file (docs/BENCHMARKS.md)")
	fs.StringVar(&c.profileDir, "profile", "", "save gateway pprof profiles (CPU under throughput and fan-out, heap, goroutines and login CPU under scale) here")
	fs.StringVar(&c.gatewayBin, "gateway-bin", "", "the xmppgw binary under test (required; make bench builds it)")
	fs.StringVar(&c.workParent, "work-dir", defaultWorkParent(), "where the bench's Prosody keeps its data and the gateway its log (a RAM disk keeps the disk's write-back, which grows with the archive, out of the figures)")
	fs.StringVar(&c.xmppAddr, "xmpp-addr", "", "use a running loopback Prosody at this address instead of starting one (users t0.., s0.., f0, f1 with password "+benchPassword+" must exist)")
	bases := fs.String("baselines", pathDirect+","+pathDirectLike, "throughput and latency baselines measured in the same run: "+pathDirect+" (plain go-xmpp) and/or "+pathDirectLike+
		" (go-xmpp doing the gateway's XMPP work: carbons, roster, XEP-0359 origin-id)")
	fs.BoolVar(&c.smoke, "smoke", false, "a few-seconds end-to-end check with tiny sizes; fails unless messages were delivered")
	fs.DurationVar(&c.maxTotal, "timeout", 60*time.Minute, "abort everything after this long")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if c.smoke {
		*pairs, *scale, *fan, *roomFan, *sat = "2", "20", "1,10", "3", "10@50"
		c.saturatedDur = time.Second
		c.runs, c.window, c.duration, c.warmup = 1, 4, time.Second, 200*time.Millisecond
		c.latencyRate, c.latencyPairs, c.latencyDur = 100, 2, time.Second
		c.idle, c.settle, c.fanoutMsgs, c.growthPairs, c.growthDuration = time.Second, 300*time.Millisecond, 3, 2, time.Second
		c.maxMsgs, c.maxTotal = 20000, 2*time.Minute
		c.takeoverStreams = 10
	}
	var err error
	if c.pairs, err = ints(*pairs); err != nil {
		return nil, fmt.Errorf("-pairs: %w", err)
	}
	if c.saturated, err = parseSaturated(*sat); err != nil {
		return nil, fmt.Errorf("-saturated: %w", err)
	}
	if c.scale, err = ints(*scale); err != nil {
		return nil, fmt.Errorf("-scale: %w", err)
	}
	if c.fanout, err = ints(*fan); err != nil {
		return nil, fmt.Errorf("-fanout: %w", err)
	}
	if c.roomFanout, err = ints(*roomFan); err != nil {
		return nil, fmt.Errorf("-room-fanout: %w", err)
	}
	for _, r := range strings.Split(*reader, ",") {
		switch r = strings.TrimSpace(r); {
		case r == "epoll" && !haveEpoll:
			return nil, errors.New("-fanout-reader: epoll needs Linux; use http")
		case r != "epoll" && r != "http":
			return nil, fmt.Errorf("-fanout-reader: unknown %q (epoll or http)", r)
		case slices.Contains(c.fanoutReaders, r):
			return nil, fmt.Errorf("-fanout-reader: %q given twice", r)
		}
		c.fanoutReaders = append(c.fanoutReaders, r)
	}
	for _, b := range strings.Split(*bases, ",") {
		switch b = strings.TrimSpace(b); {
		case b != pathDirect && b != pathDirectLike:
			return nil, fmt.Errorf("-baselines: unknown %q (%s or %s)", b, pathDirect, pathDirectLike)
		case slices.Contains(c.baselines, b):
			return nil, fmt.Errorf("-baselines: %q given twice", b)
		}
		c.baselines = append(c.baselines, b)
	}
	c.scenarios = map[string]bool{}
	for _, s := range strings.Split(*scen, ",") {
		switch s = strings.TrimSpace(s); s {
		case "throughput", "latency", "fanout", "fanout-saturated", "roomfanout", "scale", "cluster", "takeover":
			c.scenarios[s] = true
		case "":
		default:
			return nil, fmt.Errorf("-scenarios: unknown %q", s)
		}
	}
	if c.scenarios["roomfanout"] && len(c.roomFanout) == 0 {
		explicit := false
		fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "scenarios" })
		if explicit {
			return nil, errors.New("-scenarios roomfanout needs -room-fanout sizes")
		}
		delete(c.scenarios, "roomfanout") // in the default list, off without sizes
	}
	if c.scaleRuns <= 0 {
		c.scaleRuns = c.runs
	}
	if c.runs < 1 || c.window < 1 || c.latencyPairs < 1 || c.loginConc < 1 || c.fanoutMsgs < 1 {
		return nil, errors.New("counts must be positive")
	}
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "xmppgw-bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, cfg.maxTotal)
	rep, err := run(ctx, cfg)
	cancel()
	stop()
	if rep != nil {
		fmt.Print(rep.table())
		if err2 := rep.write(cfg); err2 != nil {
			err = errors.Join(err, err2)
		}
		if cfg.smoke && err == nil {
			err = smokeCheck(cfg, rep)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "xmppgw-bench:", err)
		os.Exit(1)
	}
}

// raiseNoFile lifts RLIMIT_NOFILE (and, as root, the hard limit) so that
// tens of thousands of sockets fit; children (Prosody, the gateway)
// inherit it because it was set explicitly.
func raiseNoFile() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	want := uint64(200000)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}); err == nil {
		return want
	}
	l.Cur = l.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	return l.Cur
}

// defaultWorkParent is /dev/shm when it is a writable directory, else the
// system's temporary directory.
func defaultWorkParent() string {
	if f, err := os.CreateTemp("/dev/shm", "xmppgw-bench-probe-"); err == nil {
		f.Close()
		os.Remove(f.Name())
		return "/dev/shm"
	}
	return os.TempDir()
}

// fsType names the file system dir is on, from /proc/mounts ("?" when
// unknown): the longest mount point that is a prefix of dir.
func fsType(dir string) string {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return "?"
	}
	best, typ := -1, "?"
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		mp := f[1]
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > best {
			best, typ = len(mp), f[2]
		}
	}
	return typ
}

func run(ctx context.Context, cfg *config) (*Report, error) {
	rep := &Report{Started: time.Now().UTC(), LoginConcurrency: cfg.loginConc, Command: "xmppgw-bench " + strings.Join(os.Args[1:], " "),
		Machine: machine(), NoFile: raiseNoFile(),
		Prosody: "Prosody " + prosodyVersion() + ", gc = generational, MAM on (mod_mam, default_archive_policy = true, storage_archive_item_limit = 1000000), storage internal, no TLS on loopback, no mod_limits",
		Gateway: "gateway: XMPPGW_XMPP_TLS=none, log level info (JSON to a file, XMPPGW_LOG_DELAY default 100ms), SSE queue 256, replay 1024, heartbeat 15s; limits raised (sends/s, streams, subscribers)"}
	rep.Gateway = "binary " + cfg.gatewayBin + " (XMPPGW_DEBUG_LISTEN for pprof and memstats); " + rep.Gateway
	work, err := os.MkdirTemp(cfg.workParent, "xmppgw-bench-")
	if err != nil {
		return nil, err
	}
	if cfg.xmppAddr == "" {
		rep.Prosody += ", data in " + cfg.workParent + " (" + fsType(cfg.workParent) + ")"
	}
	defer os.RemoveAll(work)
	e := &env{cfg: cfg, workDir: work, domain: prosody.DefaultDomain, xmppAddr: cfg.xmppAddr}
	defer func() {
		if e.gw != nil {
			e.gw.Kill()
		}
	}()
	if e.xmppAddr == "" {
		dir := filepath.Join(work, "prosody")
		srv, err := prosody.Start(ctx, prosody.Options{Dir: dir})
		if err != nil {
			return nil, err
		}
		defer srv.Stop()
		e.xmppAddr, e.prosody = srv.Addr, dir
		users := map[string]string{"f0": benchPassword, "f1": benchPassword}
		for i := range 2 * max(slices.Max(cfg.pairs), cfg.latencyPairs, cfg.growthPairs) {
			users[userName("t", i)] = benchPassword
		}
		for i := range cfg.sUsers() {
			users[userName("s", i)] = benchPassword
		}
		t0 := time.Now()
		if err := srv.RegisterMany(ctx, users); err != nil {
			return nil, err
		}
		logf("registered %d users in %v", len(users), time.Since(t0).Round(time.Millisecond))
	}
	if err := e.restartGateway(ctx); err != nil {
		return nil, err
	}

	if cfg.scenarios["throughput"] {
		for _, n := range cfg.pairs {
			var runs []ThroughputRun
			for i := range cfg.runs {
				got := map[string]ThroughputRun{}
				for _, p := range cfg.pathOrder(i) {
					profiled := func() {}
					if cfg.profileDir != "" && p == pathGateway && i == 0 {
						profiled = e.profileGatewayCPU(cfg.profileDir, fmt.Sprintf("throughput-%d-cpu.pprof", n), cfg.duration)
					}
					r, err := e.throughput(ctx, p, n, cfg.window, cfg.duration)
					profiled()
					if err != nil {
						return rep, fmt.Errorf("throughput %s: %w", p, err)
					}
					logf("throughput N=%d run %d %s: %.0f msg/s (%d delivered, %d errors) load %s", n, i+1, p, r.MsgPerSec, r.Delivered, r.Errors, r.Load)
					got[p] = r
					runs = append(runs, r)
				}
			}
			rep.Throughput = append(rep.Throughput, summarizeThroughput(n, cfg.window, runs))
		}
	}
	if cfg.scenarios["latency"] {
		rate := cfg.latencyRate
		if rate == 0 {
			for _, t := range rep.Throughput {
				rate = max(t.Direct.Median, t.DirectLike.Median) / 2
			}
		}
		if rate <= 0 {
			rate = 1000
		}
		var runs []LatencyRun
		for i := range cfg.runs {
			for _, p := range cfg.pathOrder(i) {
				profiled := func() {}
				if cfg.profileDir != "" && p == pathGateway && i == 0 {
					profiled = e.profileGatewayCPU(cfg.profileDir, "latency-cpu.pprof", cfg.latencyDur)
				}
				r, err := e.latency(ctx, p, cfg.latencyPairs, rate, cfg.latencyDur)
				profiled()
				if err != nil {
					return rep, fmt.Errorf("latency %s: %w", p, err)
				}
				logf("latency run %d %s @%.0f/s: p50 %.2f p99 %.2f max %.2f ms (%d/%d), Prosody's core %.2f busy, CPU µs/msg gateway %.0f prosody %.0f bench %.0f; load %s",
					i+1, p, rate, r.Latency.P50, r.Latency.P99, r.Latency.Max, r.Received, r.Sent, r.ProsodyBusy, r.CPU.Gateway, r.CPU.Prosody, r.CPU.Bench, r.Load)
				runs = append(runs, r)
			}
		}
		rep.Latency = summarizeLatency(rate, cfg.latencyPairs, runs)
	}
	if cfg.scenarios["fanout"] {
		for _, s := range cfg.fanout {
			runs := map[string][]FanoutRun{}
			for i := range cfg.runs {
				for j, reader := range cfg.readerOrder(i) {
					if cfg.profileDir != "" && i == 0 && j == 0 && s == slices.Max(cfg.fanout) {
						go func() {
							time.Sleep(time.Duration(s/5000+1) * time.Second) // after the subscriptions
							_ = e.gw.Profile("profile?seconds=2", filepath.Join(cfg.profileDir, fmt.Sprintf("fanout-%d-cpu.pprof", s)))
						}()
					}
					r, err := e.fanout(ctx, s, cfg.fanoutMsgs, reader)
					if err != nil {
						return rep, fmt.Errorf("fanout S=%d %s: %w", s, reader, err)
					}
					logf("fanout S=%d run %d %s: to last p50 %.1f p99 %.1f ms, %.0f events/s, CPU µs/event gateway %.1f clients %.1f, %d/%d complete, load %s",
						s, i+1, reader, r.ToLast.P50, r.ToLast.P99, r.EventsPerSec, r.GatewayCPUus, r.ClientsCPUus, r.Complete, r.Msgs, r.Load)
					runs[reader] = append(runs[reader], r)
				}
			}
			for _, reader := range cfg.fanoutReaders {
				rep.Fanout = append(rep.Fanout, summarizeFanout(s, reader, runs[reader]))
			}
		}
	}
	if cfg.scenarios["fanout-saturated"] {
		for _, load := range cfg.saturated {
			runs := map[string][]SaturatedRun{}
			for i := range cfg.runs {
				for _, reader := range cfg.readerOrder(i) {
					r, err := e.fanoutSaturated(ctx, load, cfg.saturatedDur, reader)
					if err != nil {
						return rep, fmt.Errorf("fanout-saturated S=%d @%.0f/s %s: %w", load.S, load.Rate, reader, err)
					}
					logf("fanout-saturated S=%d @%.0f/s run %d %s: %d deliveries in %.2f s, %.0f/s, CPU µs/delivery gateway %.2f clients %.2f, load %s",
						load.S, load.Rate, i+1, reader, r.Delivered, r.Seconds, r.DeliveriesPerSec, r.GatewayCPUus, r.ClientsCPUus, r.Load)
					runs[reader] = append(runs[reader], r)
				}
			}
			for _, reader := range cfg.fanoutReaders {
				rep.Saturated = append(rep.Saturated, summarizeSaturated(load, reader, runs[reader]))
			}
		}
	}
	if cfg.scenarios["roomfanout"] {
		for _, m := range cfg.roomFanout {
			var runs []RoomFanoutRun
			for i := range cfg.runs {
				for j, v := range cfg.roomOrder(i) {
					var r RoomFanoutRun
					var err error
					if v.path == pathDirect {
						r, err = e.roomFanoutDirect(ctx, m, cfg.fanoutMsgs)
					} else {
						profile := ""
						if cfg.profileDir != "" && i == 0 && j == 0 && m == slices.Max(cfg.roomFanout) {
							profile = filepath.Join(cfg.profileDir, fmt.Sprintf("roomfanout-%d-cpu.pprof", m))
						}
						r, err = e.roomFanout(ctx, m, cfg.fanoutMsgs, v.reader, profile)
					}
					if err != nil {
						return rep, fmt.Errorf("room fanout M=%d %s %s: %w", m, v.path, v.reader, err)
					}
					presences := "" // counted on the direct path only
					if v.path == pathDirect {
						presences = fmt.Sprintf(" (%d presences to the members)", r.JoinPresences)
					}
					logf("room fanout M=%d run %d %s %s: to last p50 %.1f p99 %.1f ms, %.0f events/s, CPU µs/event gateway %.1f prosody %.1f clients %.1f, %d/%d complete, joins %.1f s%s, load %s",
						m, i+1, r.Path, r.Reader, r.ToLast.P50, r.ToLast.P99, r.EventsPerSec, r.GatewayCPUus, r.ProsodyCPUus, r.ClientsCPUus, r.Complete, r.Msgs, r.JoinSeconds, presences, r.Load)
					runs = append(runs, r)
				}
			}
			rep.RoomFanout = append(rep.RoomFanout, summarizeRoomFanouts(m, cfg.fanoutReaders, runs)...)
		}
	}
	if cfg.scenarios["scale"] {
		for _, k := range cfg.scale {
			var runs []ScaleRun
			stopped := false
			for i := range cfg.scaleRuns {
				profile := cfg.profileDir
				if i > 0 {
					profile = "" // the first run's profiles; profiling costs the gateway CPU
				}
				r, err := e.scale(ctx, k, profile, i)
				if err != nil {
					return rep, fmt.Errorf("scale K=%d: %w", k, err)
				}
				logf("scale K=%d run %d: logins direct %.0f/s, direct with setup %.0f/s, gateway %.0f/s (gateway first: %v); gw %.1f KiB RSS, %.1f KiB heap, %.1f KiB stack, %.2f goroutines per stream; idle %.2f µs/s per stream; prosody %.1f KiB/session; msg/s gw %.0f (CPU µs/msg gateway %.0f prosody %.0f bench %.0f) direct %.0f (prosody %.0f bench %.0f); load %s %s",
					k, i+1, r.DirectLoginsPerSec, r.DirectSetupLoginsPerSec, r.GatewayLoginsPerSec, r.GatewayFirst, r.GWRSSPerStream/1024, r.GWHeapPerStream/1024, r.GWStackPerStream/1024,
					r.GWGoroutinesPerStream, r.GWIdleCPUPerStream, r.ProsodyRSSPerSession/1024,
					r.GWMsgPerSec, r.GWGrowthCPU.Gateway, r.GWGrowthCPU.Prosody, r.GWGrowthCPU.Bench, r.DirectMsgPerSec, r.DirectGrowthCPU.Prosody, r.DirectGrowthCPU.Bench, r.Load, r.StopReason)
				logf("scale K=%d run %d: CPU µs per login: direct prosody %.0f + bench %.0f; with setup prosody %.0f + bench %.0f; gateway path gateway %.0f + prosody %.0f + bench %.0f",
					k, i+1, r.DirectLoginCPU.Prosody, r.DirectLoginCPU.Bench, r.DirectSetupLoginCPU.Prosody, r.DirectSetupLoginCPU.Bench,
					r.GatewayLoginCPU.Gateway, r.GatewayLoginCPU.Prosody, r.GatewayLoginCPU.Bench)
				runs = append(runs, r)
				if r.StopReason != "" {
					stopped = true
					break
				}
			}
			rep.Scale = append(rep.Scale, summarizeScale(k, runs))
			if stopped {
				break
			}
		}
	}
	if cfg.scenarios["cluster"] {
		s, err := e.clusterScenario(ctx, slices.Max(cfg.pairs), cfg.latencyRate)
		if err != nil {
			return rep, fmt.Errorf("cluster: %w", err)
		}
		rep.Cluster = s
	}
	if cfg.scenarios["takeover"] {
		for i := range cfg.runs {
			r, err := e.takeover(ctx, cfg.takeoverStreams, i)
			if err != nil {
				return rep, fmt.Errorf("takeover: %w", err)
			}
			logf("takeover run %d: %d streams, first resumed %.0f ms and last %.0f ms after the kill, %.0f streams/s, %d lost; lease %s; load %s",
				i+1, r.Streams, r.FirstMs, r.LastMs, r.PerSec, r.Lost, r.Lease, r.Load)
			rep.Takeover = append(rep.Takeover, r)
		}
	}
	rep.Finished = time.Now().UTC()
	return rep, ctx.Err()
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
}

// Machine describes where the numbers come from.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemTotal  string `json:"mem_total"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	LoadStart string `json:"loadavg_at_start"`
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), LoadStart: loadavg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				m.CPUModel = strings.TrimSpace(l[strings.IndexByte(l, ':')+1:])
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		if len(f) >= 2 {
			kb, _ := strconv.ParseFloat(f[1], 64)
			m.MemTotal = fmt.Sprintf("%.1f GiB", kb/1024/1024)
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func prosodyVersion() string {
	out, err := exec.Command("prosodyctl", "about").CombinedOutput()
	if err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "Prosody ") {
				return strings.TrimPrefix(l, "Prosody ")
			}
		}
	}
	return "?"
}

// pathOrder is the order in which run i measures the gateway path and the
// baselines: rotated from run to run, so none always runs on a warmer
// (or more tired) server.
func (c *config) pathOrder(i int) []string {
	paths := append([]string{pathGateway}, c.baselines...)
	k := i % len(paths)
	return append(paths[k:], paths[:k]...)
}

// readerOrder is the order in which run i of a fan-out uses the readers:
// alternating, so neither always runs on a warmer gateway.
func (c *config) readerOrder(i int) []string {
	readers := slices.Clone(c.fanoutReaders)
	if i%2 == 1 {
		slices.Reverse(readers)
	}
	return readers
}

// smokeCheck re-reads the JSON and insists that both paths delivered.
func smokeCheck(cfg *config, rep *Report) error {
	var back Report
	if cfg.jsonOut != "" {
		b, err := os.ReadFile(cfg.jsonOut)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &back); err != nil {
			return fmt.Errorf("smoke: JSON does not parse: %w", err)
		}
		rep = &back
	}
	var errs []error
	check := func(ok bool, what string) {
		if !ok {
			errs = append(errs, errors.New("smoke: "+what))
		}
	}
	if cfg.scenarios["throughput"] {
		check(len(rep.Throughput) > 0 && rep.Throughput[0].Gateway.Median > 0 &&
			(rep.Throughput[0].Direct.Median > 0 || rep.Throughput[0].DirectLike.Median > 0), "throughput delivered nothing on a path")
	}
	if cfg.scenarios["latency"] {
		check(rep.Latency != nil && rep.Latency.Gateway.P50.Median > 0 &&
			(rep.Latency.Direct.P50.Median > 0 || rep.Latency.DirectLike.P50.Median > 0), "latency measured nothing")
	}
	if cfg.scenarios["fanout"] {
		check(len(rep.Fanout) > 0 && rep.Fanout[len(rep.Fanout)-1].Complete > 0, "fan-out delivered to nobody")
	}
	if cfg.scenarios["roomfanout"] {
		complete := map[string]int{}
		for _, x := range rep.RoomFanout {
			complete[x.Path] += x.Complete
		}
		check(complete[pathGateway] > 0, "room fan-out delivered to nobody on the gateway")
		check(complete[pathDirect] > 0, "room fan-out delivered to nobody on the direct path")
	}
	if cfg.scenarios["scale"] {
		check(len(rep.Scale) > 0 && rep.Scale[0].Reached == rep.Scale[0].K && rep.Scale[0].GatewayLogins.Median > 0, "scale did not open every stream")
	}
	if cfg.scenarios["fanout-saturated"] {
		check(len(rep.Saturated) > 0 && rep.Saturated[0].DeliveriesPerSec.Median > 0, "fanout-saturated delivered nothing")
	}
	if cfg.scenarios["takeover"] {
		check(len(rep.Takeover) > 0 && rep.Takeover[0].Lost == 0 && rep.Takeover[0].LastMs > 0, "takeover did not re-open every stream")
	}
	if cfg.scenarios["cluster"] {
		check(rep.Cluster != nil && rep.Cluster.Cluster.Median > 0 && rep.Cluster.Single.Median > 0 && rep.Cluster.ClusterP50.Median > 0,
			"cluster delivered nothing in a mode")
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Println("smoke: OK")
	return nil
}
