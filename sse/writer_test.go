package sse

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// writerFanOut is a fan-out Publish hands to the topic's writer goroutine.
const writerFanOut = inlineFlushMax + 4

// connectN opens n subscribers of topic and waits until all are registered.
func connectN(t *testing.T, b *Broker, srv *httptest.Server, topic string, n int) []*sseStream {
	t.Helper()
	before := b.Subscribers(topic)
	subs := make([]*sseStream, n)
	for i := range subs {
		subs[i] = connect(t, srv, topic, "", "")
	}
	require.Eventually(t, func() bool { return b.Subscribers(topic) == before+n }, 5*time.Second, time.Millisecond)
	return subs
}

// A fan-out written by the topic's writer, in rounds that put several
// events in one write, delivers every event to every subscriber once, in
// order and intact, also while concurrent publishers run ahead of it and
// some subscribers read slowly at first.
func TestWriterRoundsKeepOrderAndIntegrity(t *testing.T) {
	t.Parallel()
	const publishers, per = 3, 200
	b := NewBroker(WithReplaySize(publishers * per))
	b.Open("s")
	srv := newServer(t, b, nil)
	subs := connectN(t, b, srv, "s", writerFanOut)

	payloadOf := func(p, seq int) string {
		return fmt.Sprintf(`{"p":%d,"seq":%d,"pad":"%s"}`, p, seq, strings.Repeat("w", (p*17+seq)%5*3000))
	}
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for seq := range per {
				b.Publish("s", []byte(payloadOf(p, seq)))
			}
		})
	}
	var readers sync.WaitGroup
	errs := make([]error, len(subs))
	for k, s := range subs {
		readers.Go(func() {
			next := make([]int, publishers)
			for i := 1; i <= publishers*per; i++ {
				if k%2 == 0 && i < 40 {
					time.Sleep(time.Millisecond) // slow at first: rounds back up
				}
				ev, err := s.next()
				if err != nil {
					errs[k] = err
					return
				}
				var got struct{ P, Seq int }
				switch {
				case ev.ID != strconv.Itoa(i):
					errs[k] = fmt.Errorf("subscriber %d: event %d has id %q", k, i, ev.ID)
				case json.Unmarshal([]byte(ev.Data), &got) != nil:
					errs[k] = fmt.Errorf("subscriber %d: event %d is torn: %.80q", k, i, ev.Data)
				case got.Seq != next[got.P] || ev.Data != payloadOf(got.P, got.Seq):
					errs[k] = fmt.Errorf("subscriber %d: publisher %d's event %d out of order or altered", k, got.P, got.Seq)
				}
				if errs[k] != nil {
					return
				}
				next[got.P]++
			}
		})
	}
	wg.Wait()
	readers.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Zero(t, b.Stats().Evicted)
}

// Publish waits for the topic's writer once it is half a queue ahead, so
// subscribers that keep reading are never a whole queue behind (and
// evicted) only because the publisher was faster than the writes.
func TestWriterBackpressureEvictsNobodyWhoReads(t *testing.T) {
	t.Parallel()
	const queue, events = 8, 3000
	b := NewBroker(WithQueueSize(queue), WithReplaySize(16))
	b.Open("s")
	srv := newServer(t, b, nil)
	subs := connectN(t, b, srv, "s", writerFanOut)
	var readers sync.WaitGroup
	last := make([]string, len(subs))
	for k, s := range subs {
		readers.Go(func() {
			for range events {
				ev, err := s.next()
				if err != nil {
					return
				}
				last[k] = ev.ID
			}
		})
	}
	for i := range events {
		b.Publish("s", fmt.Appendf(nil, `{"i":%d}`, i))
	}
	readers.Wait()
	require.Zero(t, b.Stats().Evicted, "a reading subscriber was evicted")
	for k := range subs {
		require.Equal(t, strconv.Itoa(events), last[k], "subscriber %d", k)
	}
}

// A subscriber that stops reading does not hold up the writer's rounds:
// Publish goes on for the others until the stalled one is a queue behind
// and evicted.
func TestWriterStalledSubscriberEvictedWithoutBlockingPublish(t *testing.T) {
	t.Parallel()
	b := NewBroker(WithQueueSize(4))
	b.Open("s")
	srv := newServer(t, b, nil)
	rawClient(t, srv, "s") // never reads
	require.Eventually(t, func() bool { return b.Subscribers("s") == 1 }, 5*time.Second, time.Millisecond)
	fast := connectN(t, b, srv, "s", writerFanOut)

	big := []byte(`{"blob":"` + strings.Repeat("x", 256<<10) + `"}`)
	for i := 1; b.Subscribers("s") == writerFanOut+1; i++ {
		require.Less(t, i, 2000, "the stalled subscriber was never evicted")
		require.EqualValues(t, i, publishWithin(t, b, "s", big))
		for _, s := range fast {
			ev := s.event(t)
			require.Equal(t, strconv.Itoa(i), ev.ID)
			require.Len(t, ev.Data, len(big))
		}
	}
	require.EqualValues(t, 1, b.Stats().Evicted)
}

// consumeLocked drops written bytes across frame boundaries and keeps the
// rest of a frame written in part.
func TestConsumeLockedAcrossFrames(t *testing.T) {
	for _, c := range []struct {
		n    int
		want []string
	}{
		{0, []string{"abc", "de", "f"}},
		{2, []string{"c", "de", "f"}},
		{3, []string{"de", "f"}},
		{4, []string{"e", "f"}},
		{5, []string{"f"}},
		{6, []string{}},
	} {
		s := &connSubscriber{pending: [][]byte{[]byte("abc"), []byte("de"), []byte("f")}}
		s.consumeLocked(c.n)
		got := []string{}
		for _, p := range s.pending {
			got = append(got, string(p))
		}
		require.Equal(t, c.want, got, "after %d bytes", c.n)
	}
}
