package main

import (
	"encoding/json"
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
	s := summarizeRoomFanout(10, "epoll", []RoomFanoutRun{run(3, 100, 20), run(1, 300, 19), run(2, 200, 20)})
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
