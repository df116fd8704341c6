package main

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRoomFanoutFlags: the room fan-out is off without sizes, unless asked
// for by name, which is then an error; -smoke turns it on with M=3.
func TestRoomFanoutFlags(t *testing.T) {
	for _, c := range []struct {
		args    []string
		on      bool
		wantErr string
	}{
		{nil, false, ""},
		{[]string{"-room-fanout", "10,100"}, true, ""},
		{[]string{"-scenarios", "roomfanout", "-room-fanout", "10"}, true, ""},
		{[]string{"-scenarios", "fanout", "-room-fanout", "10"}, false, ""},
		{[]string{"-scenarios", "roomfanout"}, false, "needs -room-fanout"},
		{[]string{"-room-fanout", "0"}, false, "-room-fanout"},
		{[]string{"-smoke"}, true, ""},
	} {
		cfg, err := parseFlags(c.args)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: error %v, want %q", c.args, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", c.args, err)
		}
		if cfg.scenarios["roomfanout"] != c.on {
			t.Errorf("%q: roomfanout on = %v, want %v", c.args, cfg.scenarios["roomfanout"], c.on)
		}
	}
}

// TestArrivals: first and last arrival and counts per message, whatever
// the order the readers report in; other bodies are ignored.
func TestArrivals(t *testing.T) {
	a := newArrivals(2)
	t0 := time.Unix(100, 0)
	for _, d := range []time.Duration{5, 1, 9, 3} {
		a.onChat(benchBody(1, t0), t0.Add(d*time.Millisecond))
	}
	a.onChat(benchBody(2, t0), t0) // another run's or message's
	a.onChat("hello", t0)
	if got := a.counts[1].Load(); got != 4 {
		t.Errorf("count %d, want 4", got)
	}
	if first := time.Duration(a.first[1].Load() - t0.UnixNano()); first != 5*time.Millisecond {
		t.Errorf("first %v, want the first reported (5ms)", first)
	}
	if last := time.Duration(a.last[1].Load() - t0.UnixNano()); last != 9*time.Millisecond {
		t.Errorf("last %v, want the latest (9ms)", last)
	}
	if n := a.delivered(); n != 4 {
		t.Errorf("delivered %d, want 4", n)
	}
}

// TestSummarizeRoomFanout: the fan-out figures and the Prosody CPU are
// aggregated over the runs, and the JSON carries the room runs once.
func TestSummarizeRoomFanout(t *testing.T) {
	run := func(p50, prosody float64, complete int) RoomFanoutRun {
		return RoomFanoutRun{FanoutRun: FanoutRun{S: 10, Reader: "epoll", Msgs: 20, Complete: complete, ToLast: Latency{P50: p50}},
			ProsodyCPUus: prosody}
	}
	s := summarizeRoomFanout(10, pathGateway, "epoll", []RoomFanoutRun{run(3, 100, 20), run(1, 300, 19), run(2, 200, 20)})
	if s.S != 10 || s.Complete != 59 || s.Msgs != 60 {
		t.Errorf("S %d complete %d/%d", s.S, s.Complete, s.Msgs)
	}
	if s.ToLastP50.Median != 2 || s.ToLastP50.Min != 1 || s.ToLastP50.Max != 3 || s.ProsodyCPUus.Median != 200 {
		t.Errorf("spreads %+v %+v", s.ToLastP50, s.ProsodyCPUus)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Runs []map[string]any `json:"runs"`
	}
	if err := json.Unmarshal(b, &back); err != nil || len(back.Runs) != 3 || back.Runs[0]["prosody_cpu_us_per_event"] != 100.0 {
		t.Errorf("JSON runs %s: %v", b, err)
	}
}

// TestSummarizeRoomFanouts: runs are split by path and reader, gateway
// rows come first in the readers' order, the direct row last, and each
// gateway row's ratio is per run of the bench against the direct path.
func TestSummarizeRoomFanouts(t *testing.T) {
	run := func(path, reader string, p50 float64) RoomFanoutRun {
		return RoomFanoutRun{Path: path, FanoutRun: FanoutRun{S: 10, Reader: reader, Msgs: 5, Complete: 5, ToLast: Latency{P50: p50}}}
	}
	// Two runs of the bench, in roomOrder's order: run 1 direct last, run 2 first.
	runs := []RoomFanoutRun{
		run(pathGateway, "epoll", 4), run(pathGateway, "http", 6), run(pathDirect, readerGoXMPP, 2),
		run(pathDirect, readerGoXMPP, 1), run(pathGateway, "http", 5), run(pathGateway, "epoll", 3),
	}
	got := summarizeRoomFanouts(10, []string{"epoll", "http"}, runs)
	var rows []string
	for _, s := range got {
		rows = append(rows, fmt.Sprintf("%s/%s %d runs ratio %v", s.Path, s.Reader, len(s.Runs), s.ToLastRatio.Runs))
	}
	want := []string{"gateway/epoll 2 runs ratio [2 3]", "gateway/http 2 runs ratio [3 5]", "direct/go-xmpp 2 runs ratio []"}
	if !slices.Equal(rows, want) {
		t.Errorf("rows %q, want %q", rows, want)
	}
	if got[2].ToLastP50.Median != 1.5 || got[2].Complete != 10 {
		t.Errorf("direct row %+v", got[2].FanoutSummary)
	}
	b, err := json.Marshal(got[2])
	if err != nil || !strings.Contains(string(b), `"path":"direct"`) {
		t.Errorf("JSON %s: %v", b, err)
	}
	// Without direct runs (none ran): gateway rows only, no ratio.
	if got := summarizeRoomFanouts(10, []string{"epoll"}, runs[:1]); len(got) != 1 || len(got[0].ToLastRatio.Runs) != 0 {
		t.Errorf("gateway only: %+v", got)
	}
}

// TestRoomOrder: every run measures each reader on the gateway and the
// direct path once, and the direct path alternates between last and first.
func TestRoomOrder(t *testing.T) {
	cfg := &config{fanoutReaders: []string{"epoll", "http"}}
	for i, want := range []string{"gateway/epoll gateway/http direct/go-xmpp", "direct/go-xmpp gateway/http gateway/epoll", "gateway/epoll gateway/http direct/go-xmpp"} {
		var got []string
		for _, v := range cfg.roomOrder(i) {
			got = append(got, v.path+"/"+v.reader)
		}
		if strings.Join(got, " ") != want {
			t.Errorf("run %d: %q, want %q", i, got, want)
		}
	}
}

// TestRoomConfigSubmit: the owner's configuration submission (XEP-0045
// §10.2) read back with encoding/xml: an IQ set to the room, the
// muc#owner query holding a jabber:x:data submit form whose first field
// is FORM_TYPE; the fields' values survive escaping.
func TestRoomConfigSubmit(t *testing.T) {
	raw, err := xml.Marshal(roomConfigSubmit("r@conference.localhost", "cfg1",
		map[string]string{"muc#roomconfig_presencebroadcast": "moderator", "muc#roomconfig_roomname": "a<b & 'c'"}))
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		XMLName xml.Name
		Type    string `xml:"type,attr"`
		ID      string `xml:"id,attr"`
		To      string `xml:"to,attr"`
		Query   struct {
			XMLName xml.Name
			Form    struct {
				XMLName xml.Name
				Type    string `xml:"type,attr"`
				Fields  []struct {
					XMLName xml.Name
					Var     string   `xml:"var,attr"`
					Values  []string `xml:"jabber:x:data value"`
				} `xml:"jabber:x:data field"`
			} `xml:"jabber:x:data x"`
		} `xml:"http://jabber.org/protocol/muc#owner query"`
	}
	if err := xml.Unmarshal(raw, &back); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	if back.XMLName.Local != "iq" || back.XMLName.Space != "" || back.Type != "set" || back.ID != "cfg1" || back.To != "r@conference.localhost" {
		t.Errorf("iq %+v in %s", back.XMLName, raw)
	}
	if q := back.Query.XMLName; q.Space != nsMUCOwner || q.Local != "query" {
		t.Errorf("query %+v in %s", q, raw)
	}
	form := back.Query.Form
	if form.XMLName.Space != nsDataForms || form.Type != "submit" {
		t.Errorf("form %+v type %q in %s", form.XMLName, form.Type, raw)
	}
	var fields []string
	for _, f := range form.Fields {
		if f.XMLName.Space != nsDataForms {
			t.Errorf("field %s in namespace %q", f.Var, f.XMLName.Space)
		}
		fields = append(fields, f.Var+"="+strings.Join(f.Values, ","))
	}
	want := []string{"FORM_TYPE=" + nsMUCRoomConfig, "muc#roomconfig_presencebroadcast=moderator", "muc#roomconfig_roomname=a<b & 'c'"}
	if !slices.Equal(fields, want) {
		t.Errorf("fields %q, want %q", fields, want)
	}
}
