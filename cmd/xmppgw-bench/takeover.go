package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/xmppgw/xmppgw/internal/prosody"
)

// ---------- 7. takeover ----------

// TakeoverRun is one node death with K streams on it (issue 18): node 1
// holds them all and is killed (SIGKILL); nodes 2 and 3 claim and re-open
// them (the on-behalf login). Times are from the kill.
type TakeoverRun struct {
	Streams int `json:"streams"`
	// FirstMs is when the first stream was owned by a survivor again
	// (lease TTL + sweep: detection), LastMs when the last one was.
	FirstMs float64 `json:"first_resumed_ms"`
	LastMs  float64 `json:"last_resumed_ms"`
	// PerSec is the re-open rate once detected: streams / (last - first).
	PerSec float64 `json:"resumed_per_sec"`
	Lost   int     `json:"lost"` // not re-opened within the bound
	Lease  string  `json:"lease"`
	Load   string  `json:"loadavg"`
}

const (
	takeoverSecret   = "bench-xmpp-token-secret-bench-xmpp-token"
	takeoverAdmin    = "bench-admin"
	takeoverPassword = "bench-admin-password"
	takeoverRenew    = 500 * time.Millisecond
	takeoverTTL      = 2 * time.Second
)

// takeover runs one takeover of k streams on its own Prosody (with the
// on-behalf token auth) and Redis.
func (e *env) takeover(ctx context.Context, k int, run int) (TakeoverRun, error) {
	r := TakeoverRun{Streams: k, Lease: fmt.Sprintf("renew %v, TTL %v", takeoverRenew, takeoverTTL), Load: loadavg()}
	dir := filepath.Join(e.workDir, fmt.Sprintf("takeover-%d", run))
	xs, err := prosody.Start(ctx, prosody.Options{Dir: filepath.Join(dir, "prosody"), JWTSecret: takeoverSecret})
	if err != nil {
		return r, err
	}
	defer xs.Stop()
	users := map[string]string{}
	for i := range k {
		users[userName("k", i)] = benchPassword
	}
	if err := xs.RegisterMany(ctx, users); err != nil {
		return r, err
	}
	_, nodes, stop, err := startClusterNodes(ctx, e.cfg.gatewayBin, dir, "takeover", xs.Addr, xs.Domain,
		map[string]string{"XMPPGW_XMPP_TOKEN_SECRET": takeoverSecret, "XMPPGW_LEASE_RENEW": takeoverRenew.String(),
			"XMPPGW_LEASE_TTL": takeoverTTL.String(), "XMPPGW_ADMIN_USER": takeoverAdmin, "XMPPGW_ADMIN_PASSWORD": takeoverPassword})
	if err != nil {
		return r, err
	}
	defer stop()
	owner := newGWClient(nodes[0].URL)
	defer owner.close()
	ids := make([]string, k)
	if err := parallel(k, e.cfg.loginConc, func(i int) error {
		s, err := owner.login(ctx, userName("k", i), benchPassword)
		ids[i] = s.ID
		return err
	}); err != nil {
		return r, err
	}
	time.Sleep(takeoverTTL) // every registration and state settled
	dead := nodeOf(ctx, nodes[1].URL, ids[0])
	killed := time.Now()
	nodes[0].Kill()
	nodes[0] = nil
	deadline := killed.Add(takeoverTTL + time.Duration(k)*50*time.Millisecond + 30*time.Second)
	var first time.Time
	for {
		moved, err := movedFrom(ctx, nodes[1].URL, dead)
		if err == nil && moved > 0 && first.IsZero() {
			first = time.Now()
		}
		if err == nil && moved == k {
			break
		}
		if time.Now().After(deadline) {
			r.Lost = k - moved
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	last := time.Now()
	if !first.IsZero() {
		r.FirstMs = float64(first.Sub(killed).Microseconds()) / 1000
		r.LastMs = float64(last.Sub(killed).Microseconds()) / 1000
		if span := last.Sub(first).Seconds(); span > 0 {
			r.PerSec = float64(k-r.Lost) / span
		}
	}
	return r, nil
}

// adminStream is one entry of the admin stream list.
type adminStream struct {
	StreamID string `json:"streamid"`
	Node     string `json:"node"`
}

// adminStreams lists the cluster's streams through a node's admin API.
func adminStreams(ctx context.Context, base string) ([]adminStream, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/restapi/v1/admin/streams", nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(takeoverAdmin, takeoverPassword)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("admin streams: %d %s %v", res.StatusCode, strings.TrimSpace(string(b)), err)
	}
	var list struct {
		Streams []adminStream `json:"streams"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, err
	}
	return list.Streams, nil
}

// nodeOf is the node that owns stream id ("" when unknown).
func nodeOf(ctx context.Context, base, id string) string {
	list, err := adminStreams(ctx, base)
	if err != nil {
		return ""
	}
	for _, s := range list {
		if s.StreamID == id {
			return s.Node
		}
	}
	return ""
}

// movedFrom counts the streams owned by a node other than dead.
func movedFrom(ctx context.Context, base, dead string) (int, error) {
	list, err := adminStreams(ctx, base)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range list {
		if s.Node != dead && s.Node != "" {
			n++
		}
	}
	return n, nil
}
