package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/xmppgw/xmppgw/internal/redistest"
)

// ---------- 6. cluster ----------

// clusterSecret is the bench cluster's shared secret (loopback only).
const clusterSecret = "bench-cluster-secret-bench-cluster-secret"

// clusterNodes is how many gateway nodes the cluster scenario runs.
const clusterNodes = 3

// ClusterRun is one run of the cluster scenario on one mode: "single", the
// gateway under test alone, or "cluster", three nodes of the same binary on
// one redis-server where every message crosses nodes: the streams are
// owned by node 1 (their logins went there), each send goes to node 2
// (which forwards it to the owner over the internal listener) and each
// receiver's event stream is read from node 3 (served from the stream's
// log in Redis).
type ClusterRun struct {
	Mode       string        `json:"mode"`
	Throughput ThroughputRun `json:"throughput"`
	Latency    LatencyRun    `json:"latency"`
}

// ClusterSummary compares the modes run by run (issue 17's targets:
// cluster throughput ≥ 0.8× single-node, p50 at most 1 ms more).
type ClusterSummary struct {
	Pairs         int          `json:"pairs"`
	Rate          float64      `json:"offered_per_sec"`
	LatencyPairs  int          `json:"latency_pairs"`
	Single        Spread       `json:"single_msg_per_sec"`
	Cluster       Spread       `json:"cluster_msg_per_sec"`
	Ratio         Spread       `json:"ratio"` // cluster / single, per run
	SingleP50     Spread       `json:"single_p50_ms"`
	ClusterP50    Spread       `json:"cluster_p50_ms"`
	AddedP50      Spread       `json:"added_p50_ms"` // cluster p50 - single p50, per run
	AddedP99      Spread       `json:"added_p99_ms"`
	SingleCPU     ProcessCPU   `json:"single_cpu_us_per_msg"`  // throughput runs, medians
	ClusterCPU    ProcessCPU   `json:"cluster_cpu_us_per_msg"` // gateway = all three nodes
	LatencyErrors int64        `json:"latency_lost"`           // offered, never received, over all runs
	Runs          []ClusterRun `json:"runs"`
}

// startCluster runs redis-server and three gateway nodes on it and returns
// the cluster scenario's env (a copy of e wired as ClusterRun describes)
// and the function that stops it all.
func (e *env) startCluster(ctx context.Context) (*env, func(), error) {
	r, nodes, stop, err := startClusterNodes(ctx, e.cfg.gatewayBin, e.workDir, "bench", e.xmppAddr, e.domain, nil)
	if err != nil {
		return nil, nil, err
	}
	ce := *e
	ce.gw, ce.gwc = nodes[0], newGWClient(nodes[0].URL)
	ce.sendVia, ce.readVia = newGWClient(nodes[1].URL), newGWClient(nodes[2].URL)
	ce.otherNodes, ce.redisPid = nodes[1:], r.Pid()
	return &ce, func() {
		for _, c := range []*gwClient{ce.gwc, ce.sendVia, ce.readVia} {
			c.close()
		}
		stop()
	}, nil
}

// startClusterNodes runs redis-server (data under dir) and clusterNodes
// gateway nodes of bin on it, against the XMPP server at xmppAddr, each
// ready; extra is more environment for every node. stop kills the nodes
// and stops Redis.
func startClusterNodes(ctx context.Context, bin, dir, name, xmppAddr, domain string, extra map[string]string) (r *redistest.Server, nodes []*gatewayProc, stop func(), err error) {
	if err := os.MkdirAll(filepath.Join(dir, "redis"), 0o700); err != nil {
		return nil, nil, nil, err
	}
	r, err = redistest.Start(ctx, redistest.Options{Dir: filepath.Join(dir, "redis")})
	if err != nil {
		return nil, nil, nil, err
	}
	stop = func() {
		for _, n := range nodes {
			if n != nil {
				n.Kill()
			}
		}
		_ = r.Stop()
	}
	for i := range clusterNodes {
		port, err := freePort()
		if err != nil {
			stop()
			return nil, nil, nil, err
		}
		env := map[string]string{"XMPPGW_REDIS_URL": r.URL, "XMPPGW_CLUSTER": name, "XMPPGW_CLUSTER_SECRET": clusterSecret,
			"XMPPGW_CLUSTER_LISTEN": "127.0.0.1:" + strconv.Itoa(port)}
		for k, v := range extra {
			env[k] = v
		}
		n, err := startGateway(ctx, bin, xmppAddr, domain, filepath.Join(dir, fmt.Sprintf("%s-node-%d.log", name, i+1)), env)
		if err != nil {
			stop()
			return nil, nil, nil, err
		}
		nodes = append(nodes, n)
		if err := waitReady(ctx, n); err != nil {
			stop()
			return nil, nil, nil, err
		}
	}
	return r, nodes, stop, nil
}

// waitReady waits until a node's /readyz says it joined the cluster.
func waitReady(ctx context.Context, g *gatewayProc) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(g.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.New("cluster node not ready on " + g.URL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clusterScenario runs -runs rounds of both modes (the order alternates),
// each a throughput run of n pairs and a latency run at rate (0: half the
// single-node throughput of the first round).
func (e *env) clusterScenario(ctx context.Context, n int, rate float64) (*ClusterSummary, error) {
	ce, stop, err := e.startCluster(ctx)
	if err != nil {
		return nil, err
	}
	defer stop()
	modes := map[string]*env{"single": e, "cluster": ce}
	var runs []ClusterRun
	for i := range e.cfg.runs {
		order := []string{"single", "cluster"}
		if i%2 == 1 {
			order = []string{"cluster", "single"}
		}
		for _, mode := range order {
			m := modes[mode]
			profiled := func() {}
			if e.cfg.profileDir != "" && i == 0 && mode == "cluster" {
				profiled = ce.profileNodes(e.cfg.profileDir, e.cfg.duration)
			}
			t, err := m.throughput(ctx, pathGateway, n, e.cfg.window, e.cfg.duration)
			profiled()
			if err != nil {
				return nil, fmt.Errorf("%s throughput: %w", mode, err)
			}
			if rate <= 0 {
				rate = max(t.MsgPerSec/2, 100)
			}
			l, err := m.latency(ctx, pathGateway, e.cfg.latencyPairs, rate, e.cfg.latencyDur)
			if err != nil {
				return nil, fmt.Errorf("%s latency: %w", mode, err)
			}
			t.Path, l.Path = mode, mode
			logf("cluster run %d %s: %.0f msg/s (%d errors), CPU µs/msg gateway %.0f prosody %.0f redis %.0f; latency @%.0f/s p50 %.2f p99 %.2f ms (%d/%d); load %s",
				i+1, mode, t.MsgPerSec, t.Errors, t.GatewayCPUus, t.ProsodyCPUus, t.RedisCPUus, rate, l.Latency.P50, l.Latency.P99, l.Received, l.Sent, t.Load)
			runs = append(runs, ClusterRun{Mode: mode, Throughput: t, Latency: l})
		}
	}
	s := summarizeCluster(n, rate, runs)
	s.LatencyPairs = e.cfg.latencyPairs
	return s, nil
}

// profileNodes writes a CPU profile of every node (cluster-node-<n>-cpu.pprof)
// over a throughput run of length d; the returned wait blocks until all are
// written.
func (e *env) profileNodes(dir string, d time.Duration) (wait func()) {
	var done sync.WaitGroup
	for i, n := range append([]*gatewayProc{e.gw}, e.otherNodes...) {
		done.Go(func() {
			_ = n.Profile(fmt.Sprintf("profile?seconds=%d", max(1, int(d.Seconds())-1)), filepath.Join(dir, fmt.Sprintf("cluster-node-%d-cpu.pprof", i+1)))
		})
	}
	return done.Wait
}

func summarizeCluster(n int, rate float64, runs []ClusterRun) *ClusterSummary {
	p := byPath(runs, func(r ClusterRun) string { return r.Mode })
	single, cluster := p["single"], p["cluster"]
	msgs := func(r ClusterRun) float64 { return r.Throughput.MsgPerSec }
	p50 := func(r ClusterRun) float64 { return r.Latency.Latency.P50 }
	cpu := func(r ClusterRun) ProcessCPU { return r.Throughput.cpu() }
	s := &ClusterSummary{Pairs: n, Rate: rate, Single: collect(single, msgs), Cluster: collect(cluster, msgs),
		Ratio:     spreadOf(pairwise(cluster, single, func(c, s ClusterRun) float64 { return ratio(c.Throughput.MsgPerSec, s.Throughput.MsgPerSec) })),
		SingleP50: collect(single, p50), ClusterP50: collect(cluster, p50),
		AddedP50:  spreadOf(pairwise(cluster, single, func(c, s ClusterRun) float64 { return c.Latency.Latency.P50 - s.Latency.Latency.P50 })),
		AddedP99:  spreadOf(pairwise(cluster, single, func(c, s ClusterRun) float64 { return c.Latency.Latency.P99 - s.Latency.Latency.P99 })),
		SingleCPU: medianCPU(single, cpu), ClusterCPU: medianCPU(cluster, cpu), Runs: runs}
	s.ClusterCPU.Redis = collect(cluster, func(r ClusterRun) float64 { return r.Throughput.RedisCPUus }).Median
	for _, r := range runs {
		s.LatencyErrors += r.Latency.Sent - r.Latency.Received
	}
	return s
}
