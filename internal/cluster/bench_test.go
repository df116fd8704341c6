package cluster

import (
	"testing"

	"github.com/xmppgw/xmppgw/internal/redistest"
)

// BenchmarkPublish is one fenced Publish round trip (the script: fence
// check, HINCRBY, XADD MAXLEN, PEXPIRE, PUBLISH) on loopback, one caller.
func BenchmarkPublish(b *testing.B) {
	c, fence := benchNode(b)
	payload := make([]byte, 200)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.Publish(b.Context(), "s", payload, fence); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublishParallel is Publish from many goroutines (as many
// streams' owners on one node), each to its own stream.
func BenchmarkPublishParallel(b *testing.B) {
	c, _ := benchNode(b)
	payload := make([]byte, 200)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		sid := randomHex(8)
		for pb.Next() {
			if _, _, err := c.Publish(b.Context(), sid, payload, LeaseFence{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func benchNode(b *testing.B) (*Cluster, LeaseFence) {
	c := newNode(b, redistest.ForTest(b), Config{Node: "a"})
	fence, err := c.Register(b.Context(), StreamRecord{ID: "s", JID: "alice@localhost"}, Caps{})
	if err != nil {
		b.Fatal(err)
	}
	return c, fence
}
