package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

// Report is the JSON document (and the source of the tables).
type Report struct {
	Started    time.Time           `json:"started"`
	Finished   time.Time           `json:"finished"`
	Command    string              `json:"command"`
	Machine    Machine             `json:"machine"`
	NoFile     uint64              `json:"rlimit_nofile"`
	Prosody    string              `json:"prosody"`
	Gateway    string              `json:"gateway"`
	Throughput []ThroughputSummary `json:"throughput,omitempty"`
	Latency    *LatencySummary     `json:"latency,omitempty"`
	Fanout     []FanoutSummary     `json:"fanout,omitempty"`
	RoomFanout []RoomFanoutSummary `json:"room_fanout,omitempty"`
	Saturated  []SaturatedSummary  `json:"fanout_saturated,omitempty"`
	Scale      []ScaleSummary      `json:"scale,omitempty"`
	Cluster    *ClusterSummary     `json:"cluster,omitempty"`
	Takeover   []TakeoverRun       `json:"takeover,omitempty"`
	// LoginConcurrency is how many logins the scale bursts run at once.
	LoginConcurrency int `json:"login_concurrency"`
}

type ThroughputSummary struct {
	Pairs      int             `json:"pairs"`
	Window     int             `json:"window"`
	Gateway    Spread          `json:"gateway_msg_per_sec"`
	Direct     Spread          `json:"direct_msg_per_sec"`
	DirectLike Spread          `json:"direct_like_msg_per_sec"` // the direct+ baseline
	Ratio      Spread          `json:"ratio"`                   // gateway / direct, per run
	RatioLike  Spread          `json:"ratio_like"`              // gateway / direct+, per run
	Runs       []ThroughputRun `json:"runs"`
}

// byPath splits runs by path, keeping their order (run i of each path is
// the i-th element).
func byPath[R any](runs []R, path func(R) string) map[string][]R {
	out := map[string][]R{}
	for _, r := range runs {
		out[path(r)] = append(out[path(r)], r)
	}
	return out
}

// pairwise applies f to the i-th run of a and b (same run of the bench).
func pairwise[R any](a, b []R, f func(a, b R) float64) []float64 {
	var out []float64
	for i := range min(len(a), len(b)) {
		out = append(out, f(a[i], b[i]))
	}
	return out
}

func summarizeThroughput(n, w int, runs []ThroughputRun) ThroughputSummary {
	p := byPath(runs, func(r ThroughputRun) string { return r.Path })
	f := func(r ThroughputRun) float64 { return r.MsgPerSec }
	rf := func(g, d ThroughputRun) float64 { return ratio(g.MsgPerSec, d.MsgPerSec) }
	return ThroughputSummary{Pairs: n, Window: w, Gateway: collect(p[pathGateway], f), Direct: collect(p[pathDirect], f),
		DirectLike: collect(p[pathDirectLike], f),
		Ratio:      spreadOf(pairwise(p[pathGateway], p[pathDirect], rf)),
		RatioLike:  spreadOf(pairwise(p[pathGateway], p[pathDirectLike], rf)), Runs: runs}
}

type LatencyPath struct {
	P50, P90, P99, Max Spread
	ProsodyBusy        Spread     `json:"prosody_core_busy"`
	CPU                ProcessCPU `json:"cpu_us_per_msg"` // medians over the runs
}

type LatencySummary struct {
	Rate         float64      `json:"offered_per_sec"`
	Pairs        int          `json:"pairs"`
	Gateway      LatencyPath  `json:"gateway_ms"`
	Direct       LatencyPath  `json:"direct_ms"`
	DirectLike   LatencyPath  `json:"direct_like_ms"`
	AddedP50     Spread       `json:"added_p50_ms"` // gateway p50 - direct p50, per run
	AddedP99     Spread       `json:"added_p99_ms"`
	AddedP50Like Spread       `json:"added_p50_like_ms"` // gateway p50 - direct+ p50, per run
	AddedP99Like Spread       `json:"added_p99_like_ms"`
	Runs         []LatencyRun `json:"runs"`
}

func latencyPath(runs []LatencyRun) LatencyPath {
	return LatencyPath{P50: collect(runs, func(r LatencyRun) float64 { return r.Latency.P50 }),
		P90:         collect(runs, func(r LatencyRun) float64 { return r.Latency.P90 }),
		P99:         collect(runs, func(r LatencyRun) float64 { return r.Latency.P99 }),
		Max:         collect(runs, func(r LatencyRun) float64 { return r.Latency.Max }),
		ProsodyBusy: collect(runs, func(r LatencyRun) float64 { return r.ProsodyBusy }),
		CPU:         medianCPU(runs, func(r LatencyRun) ProcessCPU { return r.CPU })}
}

// medianCPU is each process's median over the runs of the CPU that pick
// reads from a run.
func medianCPU[T any](runs []T, pick func(T) ProcessCPU) ProcessCPU {
	return ProcessCPU{
		Gateway: collect(runs, func(r T) float64 { return pick(r).Gateway }).Median,
		Prosody: collect(runs, func(r T) float64 { return pick(r).Prosody }).Median,
		Bench:   collect(runs, func(r T) float64 { return pick(r).Bench }).Median,
	}
}

func summarizeLatency(rate float64, pairs int, runs []LatencyRun) *LatencySummary {
	p := byPath(runs, func(r LatencyRun) string { return r.Path })
	gw := p[pathGateway]
	d50 := func(g, d LatencyRun) float64 { return g.Latency.P50 - d.Latency.P50 }
	d99 := func(g, d LatencyRun) float64 { return g.Latency.P99 - d.Latency.P99 }
	return &LatencySummary{Rate: rate, Pairs: pairs, Gateway: latencyPath(gw), Direct: latencyPath(p[pathDirect]),
		DirectLike: latencyPath(p[pathDirectLike]),
		AddedP50:   spreadOf(pairwise(gw, p[pathDirect], d50)), AddedP99: spreadOf(pairwise(gw, p[pathDirect], d99)),
		AddedP50Like: spreadOf(pairwise(gw, p[pathDirectLike], d50)), AddedP99Like: spreadOf(pairwise(gw, p[pathDirectLike], d99)),
		Runs: runs}
}

type FanoutSummary struct {
	S            int         `json:"s"`
	Reader       string      `json:"reader"` // see FanoutRun.Reader
	Complete     int         `json:"complete"`
	Msgs         int         `json:"msgs"`
	ToLastP50    Spread      `json:"to_last_p50_ms"`
	ToLastP99    Spread      `json:"to_last_p99_ms"`
	ToFirstP50   Spread      `json:"to_first_p50_ms"`
	EventsPerSec Spread      `json:"events_per_sec"`
	GatewayCPUus Spread      `json:"gateway_cpu_us_per_event"`
	ClientsCPUus Spread      `json:"clients_cpu_us_per_event"`
	Runs         []FanoutRun `json:"runs"`
}

func summarizeFanout(s int, reader string, runs []FanoutRun) FanoutSummary {
	out := FanoutSummary{S: s, Reader: reader, Runs: runs,
		ToLastP50:    collect(runs, func(r FanoutRun) float64 { return r.ToLast.P50 }),
		ToLastP99:    collect(runs, func(r FanoutRun) float64 { return r.ToLast.P99 }),
		ToFirstP50:   collect(runs, func(r FanoutRun) float64 { return r.ToFirst.P50 }),
		EventsPerSec: collect(runs, func(r FanoutRun) float64 { return r.EventsPerSec }),
		GatewayCPUus: collect(runs, func(r FanoutRun) float64 { return r.GatewayCPUus }),
		ClientsCPUus: collect(runs, func(r FanoutRun) float64 { return r.ClientsCPUus })}
	for _, r := range runs {
		out.Complete += r.Complete
		out.Msgs += r.Msgs
	}
	return out
}

type ScaleSummary struct {
	K                 int    `json:"k"`
	Reached           int    `json:"reached"`
	StopReason        string `json:"stop_reason,omitempty"`
	DirectLogins      Spread `json:"direct_logins_per_sec"`
	GatewayLogins     Spread `json:"gateway_logins_per_sec"`
	LoginRatio        Spread `json:"login_ratio"`
	DirectSetupLogins Spread `json:"direct_setup_logins_per_sec"`
	LoginRatioSetup   Spread `json:"login_ratio_setup"`
	// CPU µs per login (medians over the runs) on each path.
	GatewayLoginCPU     ProcessCPU `json:"gateway_login_cpu_us"`
	DirectLoginCPU      ProcessCPU `json:"direct_login_cpu_us"`
	DirectSetupLoginCPU ProcessCPU `json:"direct_setup_login_cpu_us"`
	GWRSS               Spread     `json:"gw_rss_bytes_per_stream"`
	GWHeap              Spread     `json:"gw_heap_bytes_per_stream"`
	GWStack             Spread     `json:"gw_stack_bytes_per_stream"`
	GWGoroutines        Spread     `json:"gw_goroutines_per_stream"`
	GWIdleCPU           Spread     `json:"gw_idle_cpu_us_per_sec_per_stream"`
	DirectClientBytes   Spread     `json:"direct_client_bytes"`
	ProsodyPerSession   Spread     `json:"prosody_rss_bytes_per_session"`
	GWMsgPerSec         Spread     `json:"gw_msg_per_sec_with_k_open"`
	DirectMsgPerSec     Spread     `json:"direct_msg_per_sec_with_k_open"`
	// CPU µs per message with the K streams open (medians over the runs).
	GWGrowthCPU     ProcessCPU `json:"gw_cpu_us_per_msg_with_k_open"`
	DirectGrowthCPU ProcessCPU `json:"direct_cpu_us_per_msg_with_k_open"`
	Runs            []ScaleRun `json:"runs"`
}

func summarizeScale(k int, runs []ScaleRun) ScaleSummary {
	s := ScaleSummary{K: k, Runs: runs, Reached: k}
	var ok []ScaleRun
	for _, r := range runs {
		if r.StopReason != "" {
			s.StopReason, s.Reached = r.StopReason, r.Reached
			continue
		}
		ok = append(ok, r)
	}
	s.DirectLogins = collect(ok, func(r ScaleRun) float64 { return r.DirectLoginsPerSec })
	s.GatewayLogins = collect(ok, func(r ScaleRun) float64 { return r.GatewayLoginsPerSec })
	s.LoginRatio = collect(ok, func(r ScaleRun) float64 { return ratio(r.GatewayLoginsPerSec, r.DirectLoginsPerSec) })
	s.DirectSetupLogins = collect(ok, func(r ScaleRun) float64 { return r.DirectSetupLoginsPerSec })
	s.LoginRatioSetup = collect(ok, func(r ScaleRun) float64 { return ratio(r.GatewayLoginsPerSec, r.DirectSetupLoginsPerSec) })
	cpu := func(pick func(ScaleRun) ProcessCPU) ProcessCPU { return medianCPU(ok, pick) }
	s.GatewayLoginCPU = cpu(func(r ScaleRun) ProcessCPU { return r.GatewayLoginCPU })
	s.DirectLoginCPU = cpu(func(r ScaleRun) ProcessCPU { return r.DirectLoginCPU })
	s.DirectSetupLoginCPU = cpu(func(r ScaleRun) ProcessCPU { return r.DirectSetupLoginCPU })
	s.GWRSS = collect(ok, func(r ScaleRun) float64 { return r.GWRSSPerStream })
	s.GWHeap = collect(ok, func(r ScaleRun) float64 { return r.GWHeapPerStream })
	s.GWStack = collect(ok, func(r ScaleRun) float64 { return r.GWStackPerStream })
	s.GWGoroutines = collect(ok, func(r ScaleRun) float64 { return r.GWGoroutinesPerStream })
	s.GWIdleCPU = collect(ok, func(r ScaleRun) float64 { return r.GWIdleCPUPerStream })
	s.DirectClientBytes = collect(ok, func(r ScaleRun) float64 { return r.DirectHeapPerClient })
	s.ProsodyPerSession = collect(ok, func(r ScaleRun) float64 { return r.ProsodyRSSPerSession })
	s.GWMsgPerSec = collect(ok, func(r ScaleRun) float64 { return r.GWMsgPerSec })
	s.DirectMsgPerSec = collect(ok, func(r ScaleRun) float64 { return r.DirectMsgPerSec })
	s.GWGrowthCPU = cpu(func(r ScaleRun) ProcessCPU { return r.GWGrowthCPU })
	s.DirectGrowthCPU = cpu(func(r ScaleRun) ProcessCPU { return r.DirectGrowthCPU })
	return s
}

// f formats a spread as "median (min–max)".
func f(s Spread, scale float64, prec int) string {
	if len(s.Runs) == 0 {
		return "–"
	}
	if len(s.Runs) == 1 {
		return fmt.Sprintf("%.*f", prec, s.Median/scale)
	}
	return fmt.Sprintf("%.*f (%.*f–%.*f)", prec, s.Median/scale, prec, s.Min/scale, prec, s.Max/scale)
}

// markdown renders the generated section: tables with median (min–max).
func (r *Report) markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("Run %s → %s UTC. Figures are the median of the runs, with (min–max) over the runs.", r.Started.Format("2006-01-02 15:04"), r.Finished.Format("15:04"))
	p("")
	p("- Command: `%s`", r.Command)
	p("- Machine: %d CPUs (%s), %s RAM, Linux %s, %s; load average at start %s; RLIMIT_NOFILE %d",
		r.Machine.CPUs, r.Machine.CPUModel, r.Machine.MemTotal, r.Machine.Kernel, r.Machine.GoVersion, r.Machine.LoadStart, r.NoFile)
	p("- XMPP server: %s", r.Prosody)
	p("- Gateway: %s", r.Gateway)
	p("")
	if len(r.Throughput) > 0 {
		p("### 1. Throughput (N senders → N receivers, ≤ window messages in flight per pair)")
		p("")
		p("Paths: *gateway* = REST `POST` → gateway → Prosody → gateway → SSE; *direct* = plain go-xmpp client to client; " +
			"*direct+* = go-xmpp clients doing the XMPP work every gateway stream does (carbons and roster at login, XEP-0359 origin-id on every message), as chat clients do. " +
			"CPU µs per delivered message: gateway + Prosody + clients (the bench process).")
		p("")
		p("| pairs | window | gateway msg/s | direct msg/s | ratio gateway/direct | direct+ msg/s | ratio gateway/direct+ | CPU µs/msg gateway path | direct | direct+ | runs | load avg per run |")
		p("|---|---|---|---|---|---|---|---|---|---|---|---|")
		for _, t := range r.Throughput {
			var loads []string
			for _, x := range t.Runs {
				loads = append(loads, x.Load)
			}
			paths := byPath(t.Runs, func(r ThroughputRun) string { return r.Path })
			med := func(path string, f func(ThroughputRun) float64) float64 {
				var v []float64
				for _, x := range paths[path] {
					v = append(v, f(x))
				}
				return spreadOf(v).Median
			}
			gwCPU := func(x ThroughputRun) float64 { return x.GatewayCPUus }
			prCPU := func(x ThroughputRun) float64 { return x.ProsodyCPUus }
			beCPU := func(x ThroughputRun) float64 { return x.BenchCPUus }
			p("| %d | %d | %s | %s | %s | %s | %s | %.0f + %.0f + %.0f | %.0f + %.0f | %.0f + %.0f | %d | %s |", t.Pairs, t.Window,
				f(t.Gateway, 1, 0), f(t.Direct, 1, 0), f(t.Ratio, 1, 2), f(t.DirectLike, 1, 0), f(t.RatioLike, 1, 2),
				med(pathGateway, gwCPU), med(pathGateway, prCPU), med(pathGateway, beCPU),
				med(pathDirect, prCPU), med(pathDirect, beCPU), med(pathDirectLike, prCPU), med(pathDirectLike, beCPU),
				len(paths[pathGateway]), strings.Join(dedupe(loads), "; "))
		}
		p("")
	}
	if l := r.Latency; l != nil {
		p("### 2. Latency at %.0f msg/s offered (open loop, %d pairs), ms", l.Rate, l.Pairs)
		p("")
		p("| path | p50 | p90 | p99 | max | Prosody's core busy | CPU µs/msg gateway + Prosody + clients |")
		p("|---|---|---|---|---|---|---|")
		row := func(name string, x LatencyPath) {
			p("| %s | %s | %s | %s | %s | %s | %.0f + %.0f + %.0f |", name, f(x.P50, 1, 2), f(x.P90, 1, 2), f(x.P99, 1, 2), f(x.Max, 1, 1),
				f(x.ProsodyBusy, 1, 2), x.CPU.Gateway, x.CPU.Prosody, x.CPU.Bench)
		}
		row("gateway (REST request start → SSE event parsed)", l.Gateway)
		row("direct XMPP (send → receiver parsed)", l.Direct)
		row("direct+ XMPP (the gateway's XMPP work)", l.DirectLike)
		p("| **added by the gateway** vs direct | %s | | %s | | | |", f(l.AddedP50, 1, 2), f(l.AddedP99, 1, 2))
		p("| **added by the gateway** vs direct+ | %s | | %s | | | |", f(l.AddedP50Like, 1, 2), f(l.AddedP99Like, 1, 2))
		p("")
	}
	if len(r.Fanout) > 0 {
		p("### 4. Fan-out: one event to S SSE subscribers of one stream")
		p("")
		p("| S | reader | to last subscriber p50 ms | p99 ms | to first p50 ms | events/s delivered | gateway CPU µs/event | subscribers' (bench) CPU µs/event | complete |")
		p("|---|---|---|---|---|---|---|---|---|")
		for _, x := range r.Fanout {
			p("| %d | %s | %s | %s | %s | %s | %s | %s | %d/%d |", x.S, x.Reader, f(x.ToLastP50, 1, 1), f(x.ToLastP99, 1, 1), f(x.ToFirstP50, 1, 1), f(x.EventsPerSec, 1, 0),
				f(x.GatewayCPUus, 1, 1), f(x.ClientsCPUus, 1, 1), x.Complete, x.Msgs)
		}
		p("")
		p("Reader: how the bench's S subscribers read their streams, each over its own TCP connection, parsing every line. " +
			"*epoll*: raw sockets (outside Go's netpoller) on GOMAXPROCS level-triggered epoll loops, one read per ready socket, in batches (a loop pauses ≤ 0.5 ms before looking again, which counts in the times); " +
			"*http*: net/http, one goroutine and bufio reader per subscriber (a netpoll wake-up and two reads per event each). " +
			"The subscribers share the box with the gateway, so their CPU is taken from it: in production the browsers are elsewhere.")
		p("")
	}
	r.saturatedMarkdown(p)
	r.roomFanoutMarkdown(p)
	if len(r.Scale) > 0 {
		p("### 3. Scale: K streams, each with one open SSE subscriber (and 5. growth)")
		p("")
		p("Logins: K in a burst, %d in parallel. Direct = plain go-xmpp; direct + setup = go-xmpp that also enables carbons and fetches the roster, "+
			"as every gateway stream (and a chat client) does. The order of the bursts alternates between runs. CPU µs per login: gateway + Prosody + bench clients.", r.LoginConcurrency)
		p("")
		p("| K | logins/s gateway | logins/s direct | ratio | logins/s direct + setup | ratio vs direct + setup | CPU µs/login gateway path | direct | direct + setup |")
		p("|---|---|---|---|---|---|---|---|---|")
		for _, x := range r.Scale {
			p("| %d | %s | %s | %s | %s | %s | %.0f + %.0f + %.0f | %.0f + %.0f | %.0f + %.0f |", x.K, f(x.GatewayLogins, 1, 0), f(x.DirectLogins, 1, 0), f(x.LoginRatio, 1, 2),
				f(x.DirectSetupLogins, 1, 0), f(x.LoginRatioSetup, 1, 2),
				x.GatewayLoginCPU.Gateway, x.GatewayLoginCPU.Prosody, x.GatewayLoginCPU.Bench,
				x.DirectLoginCPU.Prosody, x.DirectLoginCPU.Bench, x.DirectSetupLoginCPU.Prosody, x.DirectSetupLoginCPU.Bench)
		}
		p("")
		p("| K | reached | gateway RSS KiB/stream | heap KiB/stream | stacks KiB/stream | goroutines/stream | idle CPU µs/s per stream | go-xmpp client KiB (direct) | Prosody KiB/session | msg/s gateway with K open | msg/s direct with K open | CPU µs/msg with K open, gateway path | direct |")
		p("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
		for _, x := range r.Scale {
			p("| %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f + %.0f + %.0f | %.0f + %.0f |", x.K, x.Reached,
				f(x.GWRSS, 1024, 1), f(x.GWHeap, 1024, 1), f(x.GWStack, 1024, 1), f(x.GWGoroutines, 1, 2), f(x.GWIdleCPU, 1, 2),
				f(x.DirectClientBytes, 1024, 1), f(x.ProsodyPerSession, 1024, 1), f(x.GWMsgPerSec, 1, 0), f(x.DirectMsgPerSec, 1, 0),
				x.GWGrowthCPU.Gateway, x.GWGrowthCPU.Prosody, x.GWGrowthCPU.Bench, x.DirectGrowthCPU.Prosody, x.DirectGrowthCPU.Bench)
			if x.StopReason != "" {
				p("")
				p("K=%d stopped: %s", x.K, x.StopReason)
			}
		}
		p("")
	}
	if c := r.Cluster; c != nil {
		p("### 6. Cluster: three nodes on one Redis, every message crossing nodes")
		p("")
		p("*single* = the gateway alone; *cluster* = %d nodes of the same binary on one redis-server: the %d pairs' streams are owned by node 1, "+
			"each REST send goes to node 2 (forwarded to the owner), each receiver's SSE is read from node 3 (served from the stream's log in Redis). "+
			"Throughput with ≤ window messages in flight per pair; latency open loop at %.0f msg/s over %d pairs. CPU µs per delivered message "+
			"(throughput runs): gateway (all nodes) + Prosody + clients, and Redis. Targets (issue 17): cluster/single ≥ 0.8, added p50 ≤ 1 ms.",
			clusterNodes, c.Pairs, c.Rate, c.LatencyPairs)
		p("")
		p("| pairs | single msg/s | cluster msg/s | ratio cluster/single | p50 ms single | p50 ms cluster | added p50 ms | added p99 ms | CPU µs/msg single | cluster | Redis | lost in latency runs |")
		p("|---|---|---|---|---|---|---|---|---|---|---|---|")
		p("| %d | %s | %s | %s | %s | %s | %s | %s | %.0f + %.0f + %.0f | %.0f + %.0f + %.0f | %.0f | %d |", c.Pairs, f(c.Single, 1, 0), f(c.Cluster, 1, 0), f(c.Ratio, 1, 2),
			f(c.SingleP50, 1, 2), f(c.ClusterP50, 1, 2), f(c.AddedP50, 1, 2), f(c.AddedP99, 1, 2),
			c.SingleCPU.Gateway, c.SingleCPU.Prosody, c.SingleCPU.Bench, c.ClusterCPU.Gateway, c.ClusterCPU.Prosody, c.ClusterCPU.Bench, c.ClusterCPU.Redis, c.LatencyErrors)
		p("")
	}
	if len(r.Takeover) > 0 {
		p("### 7. Takeover: a node with K streams is killed")
		p("")
		p("Three nodes on one Redis and a Prosody with the on-behalf token auth; node 1 holds all K streams and gets SIGKILL; nodes 2 and 3 claim and re-open them " +
			"(on-behalf login, same id and resource). Times from the kill until the first and the last stream is owned by a survivor again (the admin list, polled every 50 ms).")
		p("")
		p("| K | first re-opened ms | last re-opened ms | streams/s once detected | lost | lease | load avg |")
		p("|---|---|---|---|---|---|---|")
		for _, x := range r.Takeover {
			p("| %d | %.0f | %.0f | %.0f | %d | %s | %s |", x.Streams, x.FirstMs, x.LastMs, x.PerSec, x.Lost, x.Lease, x.Load)
		}
		p("")
	}
	return b.String()
}

func dedupe(s []string) []string {
	var out []string
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

func (r *Report) table() string { return r.markdown() }

const (
	beginMark = "<!-- BEGIN GENERATED by xmppgw-bench: do not edit by hand -->"
	endMark   = "<!-- END GENERATED -->"
)

func (r *Report) write(cfg *config) error {
	if cfg.jsonOut != "" {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(cfg.jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if cfg.mdOut != "" {
		old, err := os.ReadFile(cfg.mdOut)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		gen := beginMark + "\n\n" + r.markdown() + endMark
		var out []byte
		i, j := bytes.Index(old, []byte(beginMark)), bytes.Index(old, []byte(endMark))
		if i >= 0 && j > i {
			out = append(append(append([]byte{}, old[:i]...), gen...), old[j+len(endMark):]...)
		} else {
			out = append(append(old, "\n"...), gen+"\n"...)
		}
		return os.WriteFile(cfg.mdOut, out, 0o644)
	}
	return nil
}

// SaturatedSummary is the fan-out-saturated runs of one size and reader.
type SaturatedSummary struct {
	SaturatedLoad
	Reader           string         `json:"reader"`
	DeliveriesPerSec Spread         `json:"deliveries_per_sec"`
	GatewayCPUus     Spread         `json:"gateway_cpu_us_per_delivery"`
	ClientsCPUus     Spread         `json:"clients_cpu_us_per_delivery"`
	Runs             []SaturatedRun `json:"runs"`
}

func summarizeSaturated(load SaturatedLoad, reader string, runs []SaturatedRun) SaturatedSummary {
	return SaturatedSummary{SaturatedLoad: load, Reader: reader, Runs: runs,
		DeliveriesPerSec: collect(runs, func(r SaturatedRun) float64 { return r.DeliveriesPerSec }),
		GatewayCPUus:     collect(runs, func(r SaturatedRun) float64 { return r.GatewayCPUus }),
		ClientsCPUus:     collect(runs, func(r SaturatedRun) float64 { return r.ClientsCPUus })}
}

func (r *Report) saturatedMarkdown(p func(string, ...any)) {
	if len(r.Saturated) == 0 {
		return
	}
	p("### 4c. Fan-out with a backlog: S subscribers of one stream offered more than the box delivers")
	p("")
	p("| S | offered events/s | reader | events per run | deliveries/s | gateway CPU µs/delivery | subscribers' (bench) CPU µs/delivery |")
	p("|---|---|---|---|---|---|---|")
	for _, x := range r.Saturated {
		msgs := 0
		if len(x.Runs) > 0 {
			msgs = x.Runs[0].Msgs
		}
		p("| %d | %.0f | %s | %d | %s | %s | %s |", x.S, x.Rate, x.Reader, msgs, f(x.DeliveriesPerSec, 1, 0), f(x.GatewayCPUus, 1, 2), f(x.ClientsCPUus, 1, 2))
	}
	p("")
	p("Deliveries/s: S × events over the time from the first send to the last subscriber's last event; every subscriber got every event once, in one order, or the run fails. " +
		"The events are sent by 4 REST senders of one user at the offered rate (open loop), through Prosody to the stream.")
	p("")
}
