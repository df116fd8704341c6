package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/xmppgw/xmppgw/internal/redistest"
	"github.com/xmppgw/xmppgw/sse"
)

// fixedFences is the fence table of a test's registered streams.
type fixedFences struct {
	mu sync.Mutex
	m  map[string]LeaseFence
}

func (f *fixedFences) Fence(id string) (LeaseFence, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fence, ok := f.m[id]
	return fence, ok
}

func (f *fixedFences) set(id string, fence LeaseFence) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[id] = fence
}

func nextSSE(t *testing.T, sub *sse.Subscription) (sse.Event, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return sub.Next(ctx)
}

// payloads reads n events and returns their ids and data.
func readN(t *testing.T, sub *sse.Subscription, n int) (ids, data []string) {
	t.Helper()
	for range n {
		ev, err := nextSSE(t, sub)
		require.NoError(t, err)
		ids = append(ids, sse.EventID(ev.ID, ev.Epoch))
		data = append(data, string(ev.Data))
	}
	return ids, data
}

func registered(t *testing.T, c *Cluster, fences *fixedFences, id string) {
	t.Helper()
	fence, err := c.Register(t.Context(), StreamRecord{ID: id, JID: "u@example.org", Resource: "r"}, Caps{})
	require.NoError(t, err)
	fences.set(id, fence)
}

// The owner's events reach a subscriber on another node with the log's
// ids; a resume with Last-Event-ID there is judged against the log; the
// owner's close ends the subscribers on every node; and the owner learns
// that someone listens from the watchers set.
func TestRelay_EventsFromTheOwnerOnAnotherNode(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	log := slog.New(slog.DiscardHandler)
	owner := newNode(t, srv, Config{Node: "a"})
	other := newNode(t, srv, Config{Node: "b", LeaseRenew: 100 * time.Millisecond, LeaseTTL: time.Second})
	fences := &fixedFences{m: map[string]LeaseFence{}}
	pub := owner.NewEventPublisher(fences, nil, log)
	defer pub.Close()
	broker := sse.NewBroker(sse.WithReplaySize(10))
	defer broker.Close()
	relay := other.NewRelay(newHub(t, other), broker, 200*time.Millisecond, log)
	defer relay.Close()
	ctx := t.Context()

	registered(t, owner, fences, "s1")
	pub.Open("s1")
	for i := 1; i <= 3; i++ {
		pub.Publish("s1", fmt.Appendf(nil, `{"n":%d}`, i))
	}
	require.Equal(t, 0, pub.Subscribers("s1"), "nobody listens yet")

	release, err := relay.Acquire(ctx, "s1")
	require.NoError(t, err)
	sub, err := broker.Subscribe("s1", "")
	require.NoError(t, err)
	ids, data := readN(t, sub, 3)
	epoch := ids[0][len("1."):]
	require.NotEmpty(t, epoch)
	require.Equal(t, []string{"1." + epoch, "2." + epoch, "3." + epoch}, ids, "the history, with the log's ids")
	require.Equal(t, []string{`{"n":1}`, `{"n":2}`, `{"n":3}`}, data)
	require.Eventually(t, func() bool { return pub.Subscribers("s1") == 1 }, 5*time.Second, 20*time.Millisecond,
		"the owner sees a watcher")

	pub.Publish("s1", []byte(`{"n":4}`))
	ids, _ = readN(t, sub, 1)
	require.Equal(t, []string{"4." + epoch}, ids, "live")

	// A second subscriber on this node resumes from the mirror.
	resumed, err := broker.Subscribe("s1", "2."+epoch)
	require.NoError(t, err)
	ids, _ = readN(t, resumed, 2)
	require.Equal(t, []string{"3." + epoch, "4." + epoch}, ids)
	resumed.Close()

	// The owner closes the stream: the subscriber gets everything, then the end.
	pub.Publish("s1", []byte(`{"n":5}`))
	pub.CloseTopic("s1")
	ids, _ = readN(t, sub, 1)
	require.Equal(t, []string{"5." + epoch}, ids)
	_, err = nextSSE(t, sub)
	require.ErrorIs(t, err, sse.ErrClosed)
	sub.Close()
	release()
	require.Zero(t, relay.Mirrored())
	require.Eventually(t, func() bool { return relay.stoppingCount() == 0 }, 5*time.Second, 10*time.Millisecond,
		"nothing of the ended stream is kept")
	_, err = relay.Acquire(ctx, "s1")
	require.ErrorIs(t, err, ErrStreamEnded, "an ended stream's log is not served again")
	require.Eventually(t, func() bool { return pub.Subscribers("s1") == 0 }, 5*time.Second, 20*time.Millisecond,
		"the watcher is gone")
	require.Zero(t, relay.Mirrored())
	require.Eventually(t, func() bool { return relay.stoppingCount() == 0 }, 5*time.Second, 10*time.Millisecond)
}

// A mirror outlives its last subscriber by the linger time (a reconnect
// finds it warm), then stops and closes the local topic; a later Acquire
// starts over from the log.
func TestRelay_LingerThenStop(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	log := slog.New(slog.DiscardHandler)
	c := newNode(t, srv, Config{Node: "a"})
	fences := &fixedFences{m: map[string]LeaseFence{}}
	pub := c.NewEventPublisher(fences, nil, log)
	defer pub.Close()
	broker := sse.NewBroker()
	defer broker.Close()
	relay := c.NewRelay(newHub(t, c), broker, 300*time.Millisecond, log)
	defer relay.Close()

	registered(t, c, fences, "s2")
	pub.Open("s2")
	pub.Publish("s2", []byte(`{"n":1}`))
	for range 2 {
		release, err := relay.Acquire(t.Context(), "s2")
		require.NoError(t, err)
		require.Equal(t, 1, relay.Mirrored())
		sub, err := broker.Subscribe("s2", "")
		require.NoError(t, err)
		ids, _ := readN(t, sub, 1)
		require.Regexp(t, `^1\.[0-9a-f]+$`, ids[0])
		sub.Close()
		release()
		release() // once only
		require.Equal(t, 1, relay.Mirrored(), "lingering")
		require.Eventually(t, func() bool { return relay.Mirrored() == 0 }, 5*time.Second, 20*time.Millisecond)
		require.Eventually(t, func() bool {
			_, err := broker.Subscribe("s2", "")
			return err == sse.ErrTopicNotFound
		}, 5*time.Second, 20*time.Millisecond, "the local topic is closed")
	}
}

// Redis restarted without persistence: a live subscriber on another node
// is told with a reset event, then gets the new epoch's events; the ids
// never repeat a position of the old epoch.
func TestRelay_RedisRestartIsAResetForLiveSubscribers(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	log := slog.New(slog.DiscardHandler)
	owner := newNode(t, srv, Config{Node: "a"})
	other := newNode(t, srv, Config{Node: "b", PingInterval: 100 * time.Millisecond})
	fences := &fixedFences{m: map[string]LeaseFence{}}
	pub := owner.NewEventPublisher(fences, nil, log) // unfenced: the record dies with Redis's data
	defer pub.Close()
	broker := sse.NewBroker()
	defer broker.Close()
	relay := other.NewRelay(newHub(t, other), broker, 0, log)
	defer relay.Close()

	pub.Open("s3")
	pub.Publish("s3", []byte(`{"n":1}`))
	release, err := relay.Acquire(t.Context(), "s3")
	require.NoError(t, err)
	defer release()
	sub, err := broker.Subscribe("s3", "")
	require.NoError(t, err)
	defer sub.Close()
	ids, _ := readN(t, sub, 1)
	old := ids[0]

	require.NoError(t, srv.Restart(t.Context()))
	pub.Publish("s3", []byte(`{"n":"after"}`))
	ev, err := nextSSE(t, sub)
	require.NoError(t, err)
	var reset struct {
		Type        string `json:"type"`
		LastEventID string `json:"last_event_id"`
	}
	require.NoError(t, json.Unmarshal(ev.Data, &reset))
	require.Equal(t, "reset", reset.Type, "got %s", ev.Data)
	require.Equal(t, old, reset.LastEventID)
	ids, data := readN(t, sub, 1)
	require.Regexp(t, `^1\.[0-9a-f]+$`, ids[0])
	require.NotEqual(t, old, ids[0], "a new epoch")
	require.Equal(t, []string{`{"n":"after"}`}, data)
}
