package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// ---------- 4b. fan-out through a room ----------

// RoomFanoutRun: one groupchat message to a MUC room whose M occupants are
// all gateway streams with one SSE subscriber each, repeated Msgs times.
// The embedded fan-out figures count members: S is M, and every message is
// M events (the sender's own copy is the room's reflection, XEP-0045 §7.4).
type RoomFanoutRun struct {
	FanoutRun
	// ProsodyCPUus is Prosody's CPU per delivered event (µs): unlike the
	// one-stream fan-out, the room sends every member its own stanza.
	ProsodyCPUus float64 `json:"prosody_cpu_us_per_event"`
	// Delivered is every event the subscribers parsed, all messages
	// together; the CPU figures are per delivered event.
	Delivered int64 `json:"delivered"`
	// JoinSeconds is the time to create the room and join the other M-1
	// members (-login-concurrency at once); not part of the figures above.
	JoinSeconds float64 `json:"join_seconds"`
}

// RoomFanoutSummary is the room fan-out of one M and reader over the runs.
// Its embedded FanoutSummary's S is M.
type RoomFanoutSummary struct {
	FanoutSummary
	ProsodyCPUus Spread          `json:"prosody_cpu_us_per_event"`
	JoinSeconds  Spread          `json:"join_seconds"`
	Runs         []RoomFanoutRun `json:"runs"` // hides FanoutSummary.Runs
}

func summarizeRoomFanout(m int, reader string, runs []RoomFanoutRun) RoomFanoutSummary {
	base := make([]FanoutRun, len(runs))
	for i, r := range runs {
		base[i] = r.FanoutRun
	}
	s := RoomFanoutSummary{FanoutSummary: summarizeFanout(m, reader, base), Runs: runs,
		ProsodyCPUus: collect(runs, func(r RoomFanoutRun) float64 { return r.ProsodyCPUus }),
		JoinSeconds:  collect(runs, func(r RoomFanoutRun) float64 { return r.JoinSeconds })}
	s.FanoutSummary.Runs = nil // the same runs are in Runs, with the Prosody figures
	return s
}

// roomFanoutMarkdown renders table 4b (nothing without room fan-out runs).
func (r *Report) roomFanoutMarkdown(p func(format string, a ...any)) {
	if len(r.RoomFanout) == 0 {
		return
	}
	p("### 4b. Fan-out: one room message to M members on the gateway")
	p("")
	p("| M | reader | to last member p50 ms | p99 ms | to first p50 ms | events/s delivered | gateway CPU µs/event | Prosody CPU µs/event | members' (bench) CPU µs/event | create + joins s | complete |")
	p("|---|---|---|---|---|---|---|---|---|---|---|")
	for _, x := range r.RoomFanout {
		p("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d/%d |", x.S, x.Reader, f(x.ToLastP50, 1, 1), f(x.ToLastP99, 1, 1), f(x.ToFirstP50, 1, 1),
			f(x.EventsPerSec, 1, 0), f(x.GatewayCPUus, 1, 1), f(x.ProsodyCPUus, 1, 1), f(x.ClientsCPUus, 1, 1), f(x.JoinSeconds, 1, 2), x.Complete, x.Msgs)
	}
	p("")
	p("M gateway streams (users s0..), one SSE subscriber each, in one fresh room per run on Prosody's MUC (conference.<domain>, not persistent), " +
		"created and joined through the gateway's rooms API. One member (the room's creator) posts a groupchat message through REST; " +
		"a message counts when all M subscribers parsed it, the sender's own (reflected) copy included, so each message is M events; " +
		"times run from the REST request's start. Members join with no discussion history (maxstanzas=0, XEP-0045 \"Managing Discussion History\"), " +
		"and the room broadcasts the presence of moderators only (muc#roomconfig_presencebroadcast), so that joining M members does not cost M² presence events; " +
		"Prosody archives the room's messages (mod_muc_mam). CPU µs per delivered event, from /proc in 10 ms ticks (coarse for small M); readers as in table 4.")
	p("")
}

// roomCall makes one request of the gateway's rooms API for stream s with
// a JSON body and checks the status. It uses the keep-alive REST client:
// room set-up is not measured.
func (g *gwClient) roomCall(ctx context.Context, method string, s gwStream, path string, body any, want int) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, g.base+"/restapi/v1/chat/"+s.ID+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}

// roomFanout logs M gateway streams in (users s0..s(M-1)), gives each one
// SSE subscriber read by reader, puts them all in a new room and has the
// first post msgs messages to it, one at a time. Every member logs off at
// the end, which empties the room and so ends it (it is not persistent).
// With a profile path, the gateway's CPU is profiled for the first 2 s of
// the messages.
func (e *env) roomFanout(ctx context.Context, m, msgs int, reader, profile string) (RoomFanoutRun, error) {
	r := RoomFanoutRun{FanoutRun: FanoutRun{S: m, Msgs: msgs, Reader: reader, Load: loadavg()}}
	streams := make([]gwStream, m)
	defer func() {
		_ = parallel(m, e.cfg.loginConc, func(i int) error {
			if streams[i].ID != "" {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				e.gwc.logoff(ctx, streams[i])
			}
			return nil
		})
	}()
	if err := parallel(m, e.cfg.loginConc, func(i int) error {
		s, err := e.gwc.login(ctx, userName("s", i), benchPassword)
		streams[i] = s
		return err
	}); err != nil {
		return r, err
	}
	a := newArrivals(msgs)
	subscribe, stop, err := fanoutSubscribers(ctx, e.gwc, reader, a.onChat, fmt.Sprintf("room fanout M=%d %s", m, reader))
	if err != nil {
		return r, err
	}
	// Before the logoffs (deferred earlier, run later): a stream the gateway
	// ended during the run is told apart from the end of the run.
	defer stop()
	if err := parallel(m, e.cfg.loginConc, func(i int) error { return subscribe(streams[i]) }); err != nil {
		return r, err
	}

	// A fresh name per run: no earlier run's messages can reach this one's
	// subscribers, whatever the room's history or archive holds.
	room := "bench-" + strconv.Itoa(m) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	t0 := time.Now()
	create := map[string]any{"room": room, "nick": userName("s", 0),
		// Presence of moderators (the creator) only: by default every join
		// is broadcast to every occupant, M² presence events for M joins,
		// which would swamp the set-up and is not what is measured.
		"config": map[string]any{"muc#roomconfig_presencebroadcast": "moderator"}}
	if err := e.gwc.roomCall(ctx, http.MethodPost, streams[0], "/rooms", create, http.StatusCreated); err != nil {
		return r, fmt.Errorf("create room: %w", err)
	}
	if err := parallel(m-1, e.cfg.loginConc, func(i int) error {
		// maxstanzas=0: no discussion history on join (XEP-0045, "Managing
		// Discussion History"); the gateway's own create does the same.
		join := map[string]any{"nick": userName("s", i+1), "history": map[string]any{"maxstanzas": 0}}
		return e.gwc.roomCall(ctx, http.MethodPut, streams[i+1], "/rooms/"+url.PathEscape(room), join, http.StatusNoContent)
	}); err != nil {
		return r, fmt.Errorf("join room: %w", err)
	}
	r.JoinSeconds = time.Since(t0).Seconds()
	time.Sleep(200 * time.Millisecond) // as the fan-out: let the joins' events drain

	if profile != "" {
		profiled := make(chan struct{})
		go func() {
			defer close(profiled)
			_ = e.gw.Profile("profile?seconds=2", profile)
		}()
		defer func() { <-profiled }() // the profile request ends by itself after 2 s
	}
	cpu0 := e.cpuSnapshot()
	if err := e.fanoutRounds(&r.FanoutRun, a, func(body string) error { return e.gwc.sendRoom(streams[0], room, body) }); err != nil {
		return r, err
	}
	cpu1 := e.cpuSnapshot()
	if r.Delivered = a.delivered(); r.Delivered > 0 {
		per := func(i int) float64 { return float64((cpu1[i] - cpu0[i]).Microseconds()) / float64(r.Delivered) }
		r.GatewayCPUus, r.ProsodyCPUus, r.ClientsCPUus = per(0), per(1), per(2)
	}
	return r, nil
}

// sUsers is how many s users (s0..) the scale and room fan-out scenarios
// need.
func (c *config) sUsers() int {
	n := 0
	if c.scenarios["scale"] && len(c.scale) > 0 {
		n = slices.Max(c.scale)
	}
	if c.scenarios["roomfanout"] && len(c.roomFanout) > 0 {
		n = max(n, slices.Max(c.roomFanout))
	}
	return n
}
