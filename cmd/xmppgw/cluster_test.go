package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/xmppgw/xmppgw/internal/cluster"
	"github.com/xmppgw/xmppgw/internal/redistest"
)

func clusterEnv(redisURL string, extra map[string]string) map[string]string {
	m := map[string]string{
		"XMPPGW_REDIS_URL": redisURL, "XMPPGW_JWT_SECRET": strings.Repeat("j", 32),
		"XMPPGW_CLUSTER_SECRET": strings.Repeat("c", 32), "XMPPGW_CLUSTER_LISTEN": "127.0.0.1:7001",
	}
	for k, v := range extra {
		if v == "" {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	return m
}

func TestParseConfig_ClusterMode(t *testing.T) {
	c, err := parseConfig(nil, env(clusterEnv("redis://127.0.0.1:6379/0", map[string]string{
		"XMPPGW_CLUSTER": "prod-eu", "XMPPGW_LEASE_RENEW": "1s", "XMPPGW_LEASE_TTL": "4s"})), io.Discard)
	require.NoError(t, err)
	require.Equal(t, "prod-eu", c.Cluster.Name)
	require.Equal(t, "127.0.0.1:7001", c.Cluster.Advertise)
	require.Equal(t, time.Second, c.Cluster.LeaseRenew)
	require.Equal(t, 4*time.Second, c.Cluster.LeaseTTL)
	require.Equal(t, c.SSEReplay, c.Cluster.ReplayWindow)

	c, err = parseConfig(nil, env(nil), io.Discard)
	require.NoError(t, err, "single node needs none of it")
	require.Empty(t, c.RedisURL)

	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"XMPPGW_JWT_SECRET": ""}, "XMPPGW_JWT_SECRET: must be set in cluster mode"},
		{map[string]string{"XMPPGW_CLUSTER_SECRET": ""}, "XMPPGW_CLUSTER_SECRET: must be set in cluster mode"},
		{map[string]string{"XMPPGW_CLUSTER_SECRET": "short"}, "XMPPGW_CLUSTER_SECRET: must be at least 32 bytes"},
		{map[string]string{"XMPPGW_CLUSTER_LISTEN": ""}, "XMPPGW_CLUSTER_LISTEN: must be set in cluster mode"},
		{map[string]string{"XMPPGW_CLUSTER_LISTEN": "0.0.0.0:7001"}, "XMPPGW_CLUSTER_LISTEN: is advertised to the other nodes as is"},
		{map[string]string{"XMPPGW_CLUSTER_LISTEN": ":7001"}, "XMPPGW_CLUSTER_LISTEN: is advertised to the other nodes as is"},
		{map[string]string{"XMPPGW_CLUSTER_LISTEN": "no-port"}, "XMPPGW_CLUSTER_LISTEN: address no-port: missing port"},
		{map[string]string{"XMPPGW_CLUSTER": "a{b}"}, "XMPPGW_CLUSTER: cluster: invalid cluster name"},
		{map[string]string{"XMPPGW_LEASE_TTL": "2s"}, "must exceed the renew interval"},
		{map[string]string{"XMPPGW_LEASE_RENEW": "soon"}, "XMPPGW_LEASE_RENEW: must be a positive duration"},
		{map[string]string{"XMPPGW_REDIS_URL": "http://127.0.0.1:6379"}, "XMPPGW_REDIS_URL: cluster: redis URL"},
	} {
		_, err := parseConfig(nil, env(clusterEnv("redis://127.0.0.1:6379/0", tt.env)), io.Discard)
		require.ErrorContains(t, err, tt.want, "%v", tt.env)
	}
}

// lockedBuffer collects run's log output written from its goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// A cluster node takes its lease with the advertised address, answers its
// peers on the internal listener only with the cluster secret, and drops
// the lease when it stops; a node that cannot reach Redis does not start.
func TestRun_ClusterNodeJoinsAndLeaves(t *testing.T) {
	r := redistest.ForTest(t)
	internal, public, metrics := freeAddr(t), freeAddr(t), freeAddr(t)
	vars := clusterEnv(r.URL, map[string]string{"XMPPGW_CLUSTER_LISTEN": internal, "XMPPGW_LISTEN": public, "XMPPGW_METRICS_LISTEN": metrics,
		"XMPPGW_CLUSTER": "joins", "XMPPGW_LEASE_RENEW": "200ms", "XMPPGW_LEASE_TTL": "1s", "XMPPGW_LOG_DELAY": "0",
		"XMPPGW_ADMIN_USER": "ops", "XMPPGW_ADMIN_PASSWORD": "correct-horse-battery"})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var logs lockedBuffer
	exited := make(chan int, 1)
	go func() { exited <- run(ctx, nil, env(vars), &logs) }()

	watcher, err := cluster.Open(t.Context(), r.URL, cluster.Config{Name: "joins"})
	require.NoError(t, err)
	defer watcher.Close()
	var node string
	require.Eventually(t, func() bool {
		for _, line := range strings.Split(logs.String(), "\n") {
			var rec struct{ Node string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Node != "" {
				node = rec.Node
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "no cluster-mode line in the log:\n%s", logs.String())
	require.Contains(t, logs.String(), "a dead node's streams are taken over by a survivor", "the node says what cluster mode does with a dead node's streams")
	addr, alive, err := watcher.NodeAddr(t.Context(), node)
	require.NoError(t, err)
	require.True(t, alive)
	require.Equal(t, internal, addr)

	ping := func(secret string) (int, string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+internal+"/internal/v1/ping", nil)
		require.NoError(t, err)
		if secret != "" {
			req.Header.Set("X-Xmppgw-Cluster-Secret", secret)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	require.Eventually(t, func() bool { code, _ := ping(vars["XMPPGW_CLUSTER_SECRET"]); return code == http.StatusOK }, 5*time.Second, 50*time.Millisecond)
	for _, secret := range []string{"", strings.Repeat("x", 32), vars["XMPPGW_JWT_SECRET"]} {
		code, body := ping(secret)
		require.Equal(t, http.StatusUnauthorized, code, body)
		require.Contains(t, body, `"code":40100`)
	}
	// The public listener does not serve the internal routes.
	res, err := http.Get("http://" + public + "/internal/v1/ping")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusNotFound, res.StatusCode)

	// Failed guesses count in Redis, where every node sees them.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+public+"/restapi/v1/admin/streams", nil)
	require.NoError(t, err)
	req.SetBasicAuth("ops", "wrong-password-here")
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	for _, set := range []string{"login-pair", "login-address", "login-name"} {
		keys, err := watcher.Redis().Keys(t.Context(), "rate:joins:"+set+":*").Result()
		require.NoError(t, err)
		require.Len(t, keys, 1, "the %s bucket is in Redis", set)
	}

	// /metrics shows the cluster figures; the node has sent Redis commands.
	res, err = http.Get("http://" + metrics + "/metrics")
	require.NoError(t, err)
	scraped, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	require.Regexp(t, `(?m)^xmppgw_cluster_redis_round_trip_seconds_count [1-9][0-9]*$`, string(scraped))
	require.Regexp(t, `(?m)^xmppgw_cluster_redis_round_trip_seconds_bucket\{le="0.001"\} [0-9]+$`, string(scraped))
	for _, name := range []string{"xmppgw_cluster_mirrored_streams 0", "xmppgw_cluster_events_dropped_total 0",
		"xmppgw_cluster_pubsub_reconnects_total 0", "xmppgw_cluster_forwarded_requests_total 0"} {
		require.Contains(t, string(scraped), "\n"+name+"\n")
	}

	cancel()
	select {
	case code := <-exited:
		require.Equal(t, 0, code, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop")
	}
	_, alive, err = watcher.NodeAddr(t.Context(), node)
	require.NoError(t, err)
	require.False(t, alive, "a node that stopped cleanly drops its lease at once")

	// Redis gone: the node refuses to start instead of serving unclustered.
	require.NoError(t, r.Kill())
	logs = lockedBuffer{}
	code := run(t.Context(), nil, env(vars), &logs)
	require.Equal(t, 1, code)
	require.Contains(t, logs.String(), "joining the cluster", fmt.Sprint(logs.String()))
	// go-redis's own complaints land in the structured log, not on stderr.
	require.Contains(t, logs.String(), `"tag":"redis"`)
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		require.True(t, json.Valid([]byte(line)), "every log line is JSON: %q", line)
	}
}
