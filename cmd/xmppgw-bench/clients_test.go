package main

import (
	"testing"
	"time"
)

func TestChatBody(t *testing.T) {
	for _, c := range []struct {
		line, want string
		ok         bool
	}{
		{`data: {"type":"chat","id":"x","from":"a@l/r","to":"b@l/r","body":"bench 1 2"}` + "\n", "bench 1 2", true},
		{`data: {"type":"chat","body":"bench 1 \"2"}` + "\n", `bench 1 "2`, true},
		{`data: {"type":"presence","from":"a"}` + "\n", "", false},
		{`data: {"type":"chat","body":"hello"}` + "\n", "", false},
		{": heartbeat\n", "", false},
	} {
		got, ok := chatBody([]byte(c.line))
		if got != c.want || ok != c.ok {
			t.Errorf("chatBody(%q) = %q, %v; want %q, %v", c.line, got, ok, c.want, c.ok)
		}
	}
	seq, _, ok := parseBenchBody(benchBody(42, time.Unix(0, 5)))
	if !ok || seq != 42 {
		t.Errorf("parseBenchBody: %d %v", seq, ok)
	}
}
