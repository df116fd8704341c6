package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	xmpp "github.com/xmppo/go-xmpp"
)

// ---------- 4b. fan-out through a room ----------

// RoomFanoutRun: one groupchat message to a MUC room whose M occupants are
// all gateway streams with one SSE subscriber each, repeated Msgs times.
// The embedded fan-out figures count members: S is M, and every message is
// M events (the sender's own copy is the room's reflection, XEP-0045 §7.4).
type RoomFanoutRun struct {
	FanoutRun
	// Path is "gateway" (M gateway streams, read over SSE) or "direct" (M
	// plain go-xmpp clients, the same-run baseline).
	Path string `json:"path"`
	// ProsodyCPUus is Prosody's CPU per delivered event (µs): unlike the
	// one-stream fan-out, the room sends every member its own stanza.
	ProsodyCPUus float64 `json:"prosody_cpu_us_per_event"`
	// Delivered is every event the subscribers parsed, all messages
	// together; the CPU figures are per delivered event.
	Delivered int64 `json:"delivered"`
	// JoinSeconds is the time to create the room and join the other M-1
	// members (-login-concurrency at once); not part of the figures above.
	JoinSeconds float64 `json:"join_seconds"`
	// JoinPresences is how many presence stanzas the direct members got
	// from the room's creation to the end of the messages: about 2M when
	// only the moderator's presence is broadcast, M²/2 otherwise. Not
	// counted on the gateway path.
	JoinPresences int64 `json:"join_presences,omitempty"`
}

// readerGoXMPP is the Reader of the direct room path: every member is a
// go-xmpp client reading its own stream.
const readerGoXMPP = "go-xmpp"

// roomWait bounds each room set-up step of the direct path (a join, the
// configuration).
const roomWait = 30 * time.Second

// RoomFanoutSummary is the room fan-out of one M, path and reader over
// the runs. Its embedded FanoutSummary's S is M.
type RoomFanoutSummary struct {
	FanoutSummary
	Path         string `json:"path"`
	ProsodyCPUus Spread `json:"prosody_cpu_us_per_event"`
	JoinSeconds  Spread `json:"join_seconds"`
	// ToLastRatio is, on gateway rows, the time to the last member (p50)
	// over the direct path's in the same run of the bench.
	ToLastRatio Spread          `json:"to_last_p50_ratio_gateway_direct,omitzero"`
	Runs        []RoomFanoutRun `json:"runs"` // hides FanoutSummary.Runs
}

func summarizeRoomFanout(m int, path, reader string, runs []RoomFanoutRun) RoomFanoutSummary {
	base := make([]FanoutRun, len(runs))
	for i, r := range runs {
		base[i] = r.FanoutRun
	}
	s := RoomFanoutSummary{FanoutSummary: summarizeFanout(m, reader, base), Path: path, Runs: runs,
		ProsodyCPUus: collect(runs, func(r RoomFanoutRun) float64 { return r.ProsodyCPUus }),
		JoinSeconds:  collect(runs, func(r RoomFanoutRun) float64 { return r.JoinSeconds })}
	s.FanoutSummary.Runs = nil // the same runs are in Runs, with the Prosody figures
	return s
}

// summarizeRoomFanouts gives the rows of table 4b for one M: one per
// gateway reader (in the order of readers), each with its ratio to the
// direct path, then the direct path's, if it ran. The runs are in the
// order they ran, so the i-th run of each path is the same run of the
// bench.
func summarizeRoomFanouts(m int, readers []string, runs []RoomFanoutRun) []RoomFanoutSummary {
	paths := byPath(runs, func(r RoomFanoutRun) string { return r.Path })
	direct := paths[pathDirect]
	gw := byPath(paths[pathGateway], func(r RoomFanoutRun) string { return r.Reader })
	var out []RoomFanoutSummary
	for _, reader := range readers {
		s := summarizeRoomFanout(m, pathGateway, reader, gw[reader])
		s.ToLastRatio = spreadOf(pairwise(gw[reader], direct, func(g, d RoomFanoutRun) float64 { return ratio(g.ToLast.P50, d.ToLast.P50) }))
		out = append(out, s)
	}
	if len(direct) > 0 {
		out = append(out, summarizeRoomFanout(m, pathDirect, readerGoXMPP, direct))
	}
	return out
}

// roomVariant is one measurement of a room fan-out run of the bench: the
// path, and for the gateway path the reader.
type roomVariant struct{ path, reader string }

// roomOrder is the order of run i of the room fan-out: the gateway path
// once per reader (readerOrder), and the direct path last in even runs,
// first in odd ones, so that no path always runs on a warmer (or more
// tired) Prosody.
func (c *config) roomOrder(i int) []roomVariant {
	var out []roomVariant
	for _, r := range c.readerOrder(i) {
		out = append(out, roomVariant{pathGateway, r})
	}
	direct := roomVariant{path: pathDirect, reader: readerGoXMPP}
	if i%2 == 1 {
		return append([]roomVariant{direct}, out...)
	}
	return append(out, direct)
}

// roomFanoutMarkdown renders table 4b (nothing without room fan-out runs).
func (r *Report) roomFanoutMarkdown(p func(format string, a ...any)) {
	if len(r.RoomFanout) == 0 {
		return
	}
	p("### 4b. Fan-out: one room message to M members, on the gateway and directly")
	p("")
	p("| M | path | reader | to last member p50 ms | p99 ms | to last p50 ratio gateway/direct | to first p50 ms | events/s delivered | gateway CPU µs/event | Prosody CPU µs/event | members' (bench) CPU µs/event | create + joins s | complete |")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, x := range r.RoomFanout {
		p("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d/%d |", x.S, x.Path, x.Reader, f(x.ToLastP50, 1, 1), f(x.ToLastP99, 1, 1), f(x.ToLastRatio, 1, 2), f(x.ToFirstP50, 1, 1),
			f(x.EventsPerSec, 1, 0), f(x.GatewayCPUus, 1, 1), f(x.ProsodyCPUus, 1, 1), f(x.ClientsCPUus, 1, 1), f(x.JoinSeconds, 1, 2), x.Complete, x.Msgs)
	}
	p("")
	p("*gateway*: M gateway streams (users s0..), one SSE subscriber each, in one fresh room per run on Prosody's MUC (conference.<domain>, not persistent), " +
		"created and joined through the gateway's rooms API; one member (the room's creator) posts a groupchat message through REST. " +
		"*direct*: the same users as M plain go-xmpp clients on the same Prosody, in a fresh room of their own: the first creates it by joining (no room locking), " +
		"submits the owner configuration form (XEP-0045 §10.2), the others join; the first sends the groupchat message. " +
		"A message counts when all M members parsed it, the sender's own (reflected) copy included, so each message is M events; " +
		"times run from the send's start (the REST request's on the gateway). Members join with no discussion history (XEP-0045 \"Managing Discussion History\"), " +
		"and the room broadcasts the presence of moderators only (muc#roomconfig_presencebroadcast), so that joining M members does not cost M² presence events; " +
		"Prosody archives the room's messages (mod_muc_mam). The ratio is per run of the bench (gateway over direct in the same run); the paths' order alternates between runs. " +
		"CPU µs per delivered event, from /proc in 10 ms ticks (coarse for small M); the gateway's is 0 on the direct path, which does not use it; readers as in table 4.")
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

// roomName is a fresh room name per run: no earlier run's messages can
// reach this one's members, whatever the room's history or archive holds.
func roomName(path string, m int) string {
	return "bench-" + path + "-" + strconv.Itoa(m) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

// roomFanout logs M gateway streams in (users s0..s(M-1)), gives each one
// SSE subscriber read by reader, puts them all in a new room and has the
// first post msgs messages to it, one at a time. Every member logs off at
// the end, which empties the room and so ends it (it is not persistent).
// With a profile path, the gateway's CPU is profiled for the first 2 s of
// the messages.
func (e *env) roomFanout(ctx context.Context, m, msgs int, reader, profile string) (RoomFanoutRun, error) {
	r := RoomFanoutRun{Path: pathGateway, FanoutRun: FanoutRun{S: m, Msgs: msgs, Reader: reader, Load: loadavg()}}
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

	room := roomName(pathGateway, m)
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
	return r, e.measureRoom(&r, a, profile, func(body string) error { return e.gwc.sendRoom(streams[0], room, body) })
}

// roomFanoutDirect is roomFanout's baseline: the same users s0..s(M-1) as
// M plain go-xmpp clients on the same Prosody, each reading its own
// stream, in a new room of their own; s0 creates and configures it and
// sends the msgs messages. Every client is closed at the end, which
// empties the room and so ends it.
func (e *env) roomFanoutDirect(ctx context.Context, m, msgs int) (RoomFanoutRun, error) {
	r := RoomFanoutRun{Path: pathDirect, FanoutRun: FanoutRun{S: m, Msgs: msgs, Reader: readerGoXMPP, Load: loadavg()}}
	a := newArrivals(msgs)
	clients := make([]*directClient, m)
	defer func() {
		_ = parallel(m, e.cfg.loginConc, func(i int) error {
			if clients[i] != nil {
				clients[i].close()
			}
			return nil
		})
	}()
	if err := parallel(m, e.cfg.loginConc, func(i int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, err := startDirect(e.xmppAddr, e.domain, userName("s", i), benchPassword, "room", false, a.onChat)
		clients[i] = c
		return err
	}); err != nil {
		return r, err
	}
	presences := func() (n int64) {
		for _, c := range clients {
			n += c.presences.Load()
		}
		return n
	}
	p0 := presences()

	// The room's bare JID on Prosody's MUC component (internal/prosody:
	// conference.<domain>), as the gateway's default MUC service.
	room := roomName(pathDirect, m) + "@conference." + e.domain
	owner := clients[0]
	t0 := time.Now()
	// Joining creates the room: Prosody's muc_room_locking = false leaves
	// it unlocked (XEP-0045 §10.1.2, "instant room"), so the others could
	// join at once; they wait for the configuration all the same, as the
	// gateway path's members wait for its create.
	if err := owner.joinRoom(room, userName("s", 0)); err != nil {
		return r, fmt.Errorf("create room: %w", err)
	}
	if err := owner.configureRoom(room, map[string]string{"muc#roomconfig_presencebroadcast": "moderator"}); err != nil {
		return r, fmt.Errorf("configure room: %w", err)
	}
	if err := parallel(m-1, e.cfg.loginConc, func(i int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return clients[i+1].joinRoom(room, userName("s", i+1))
	}); err != nil {
		return r, fmt.Errorf("join room: %w", err)
	}
	r.JoinSeconds = time.Since(t0).Seconds()
	err := e.measureRoom(&r, a, "", func(body string) error {
		// go-xmpp writes the stanza: the plain client's own way of sending
		// (XEP-0045 §7.4, groupchat to the room's bare JID).
		_, err := owner.c.Send(xmpp.Chat{Remote: room, Type: "groupchat", Text: body})
		return err
	})
	r.JoinPresences = presences() - p0
	return r, err
}

// measureRoom lets the joins' events drain, then sends the run's messages
// through send (fanoutRounds) and fills r's CPU figures per delivered
// event. With a profile path, the gateway's CPU is profiled for the first
// 2 s of the messages. The gateway's CPU counts on its path only: on the
// direct path it idles, and is not part of that path.
func (e *env) measureRoom(r *RoomFanoutRun, a *arrivals, profile string, send func(body string) error) error {
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
	if err := e.fanoutRounds(&r.FanoutRun, a, send); err != nil {
		return err
	}
	cpu1 := e.cpuSnapshot()
	if r.Delivered = a.delivered(); r.Delivered > 0 {
		per := func(i int) float64 { return float64((cpu1[i] - cpu0[i]).Microseconds()) / float64(r.Delivered) }
		r.GatewayCPUus, r.ProsodyCPUus, r.ClientsCPUus = per(0), per(1), per(2)
		if r.Path != pathGateway {
			r.GatewayCPUus = 0
		}
	}
	return nil
}

// joinRoom enters room (a bare JID) as nick with no discussion history
// (go-xmpp's JoinMUCNoHistory: maxchars='0', XEP-0045 "Managing
// Discussion History") and waits for the room's answer: the member's own
// presence, from room/nick, which the room sends once the join is done
// (XEP-0045 §7.2.3, "Presence Broadcast"), or an error presence from that
// address.
func (d *directClient) joinRoom(room, nick string) error {
	occupant := room + "/" + nick
	p, err := await(d, func() (int, error) { return d.c.JoinMUCNoHistory(room, nick) },
		func(p xmpp.Presence) bool { return p.From == occupant }, roomWait)
	switch {
	case err != nil:
		return fmt.Errorf("join %s: %w", occupant, err)
	case p.Type == "error":
		return fmt.Errorf("join %s: error %s", occupant, p.Error)
	}
	return nil
}

// configureRoom submits the owner configuration form with fields
// (XEP-0045 §10.2) and waits for the room's answer.
func (d *directClient) configureRoom(room string, fields map[string]string) error {
	id := "cfg" + strconv.FormatInt(directSeq.Add(1), 36)
	raw, err := xml.Marshal(roomConfigSubmit(room, id, fields))
	if err != nil {
		return err
	}
	iq, err := await(d, func() (int, error) { return d.c.SendOrg(string(raw)) },
		func(iq xmpp.IQ) bool { return iq.ID == id }, roomWait)
	switch {
	case err != nil:
		return err
	case iq.Type != "result":
		return fmt.Errorf("room answered %s: %s", iq.Type, iq.Query)
	}
	return nil
}

// Namespaces of the owner configuration form (XEP-0045 §10.2, XEP-0004).
const (
	nsMUCOwner      = "http://jabber.org/protocol/muc#owner"
	nsDataForms     = "jabber:x:data"
	nsMUCRoomConfig = "http://jabber.org/protocol/muc#roomconfig"
)

// mucOwnerQuery, dataForm and formField are the owner's configuration
// submission, marshalled by encoding/xml: the form's fields inherit the
// jabber:x:data namespace of their x.
type mucOwnerQuery struct {
	XMLName xml.Name `xml:"http://jabber.org/protocol/muc#owner query"`
	Form    dataForm
}

type dataForm struct {
	XMLName xml.Name    `xml:"jabber:x:data x"`
	Type    string      `xml:"type,attr"`
	Fields  []formField `xml:"field"`
}

type formField struct {
	Var   string `xml:"var,attr"`
	Value string `xml:"value"`
}

// roomConfigSubmit is the IQ set that submits the owner configuration
// form of room with fields (in sorted order, after FORM_TYPE); fields
// left out keep their values (XEP-0045 §10.2).
func roomConfigSubmit(room, id string, fields map[string]string) setupIQ {
	form := dataForm{Type: "submit", Fields: []formField{{Var: "FORM_TYPE", Value: nsMUCRoomConfig}}}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		form.Fields = append(form.Fields, formField{Var: k, Value: fields[k]})
	}
	return setupIQ{Type: "set", ID: id, To: room, Payload: mucOwnerQuery{Form: form}}
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
