package cluster

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/xmppgw/xmppgw/internal/redistest"
	"github.com/xmppgw/xmppgw/sse"
)

// Redis stops (killed; its append-only file keeps what it acknowledged):
// the owner's own subscribers keep getting the stream's events, with the
// ids the log gives them once Redis is back; afterwards the log holds the
// same events and the subscriber gets nothing twice and no reset.
func TestRelay_OwnerServesItsOwnSubscribersWhileRedisIsDown(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t, redistest.Options{Persist: true})
	log := slog.New(slog.DiscardHandler)
	owner := newNode(t, srv, Config{Node: "a", PingInterval: 100 * time.Millisecond})
	hub := newHub(t, owner)
	fences := &fixedFences{m: map[string]LeaseFence{}}
	pub := owner.NewEventPublisher(fences, hub, log)
	defer pub.Close()
	broker := sse.NewBroker()
	defer broker.Close()
	relay := owner.NewRelay(hub, broker, 0, log)
	defer relay.Close()
	ctx := t.Context()

	registered(t, owner, fences, "s1")
	pub.Open("s1")
	release, err := relay.Acquire(ctx, "s1")
	require.NoError(t, err)
	defer release()
	sub, err := broker.Subscribe("s1", "")
	require.NoError(t, err)
	defer sub.Close()
	pub.Publish("s1", []byte(`{"n":1}`))
	ids, _ := readN(t, sub, 1)
	epoch := ids[0][len("1."):]

	require.NoError(t, srv.Kill())
	for i := 2; i <= 5; i++ {
		pub.Publish("s1", fmt.Appendf(nil, `{"n":%d}`, i))
	}
	ids, data := readN(t, sub, 4)
	require.Equal(t, []string{"2." + epoch, "3." + epoch, "4." + epoch, "5." + epoch}, ids,
		"delivered while Redis is down, with the offsets the log will give them")
	require.Equal(t, []string{`{"n":2}`, `{"n":3}`, `{"n":4}`, `{"n":5}`}, data)
	require.EqualValues(t, 4, pub.Provisional())

	require.NoError(t, srv.Restart(ctx))
	var logged []string
	require.Eventually(t, func() bool {
		h, err := owner.ReadAfter(ctx, "s1", 0, "")
		if err != nil || h.Epoch != epoch {
			return false
		}
		logged = logged[:0]
		for _, ev := range h.Events {
			logged = append(logged, fmt.Sprintf("%d %s", ev.Offset, ev.Payload))
		}
		return len(logged) == 5
	}, 10*time.Second, 20*time.Millisecond, "the outage's events reach the log")
	require.Equal(t, []string{`1 {"n":1}`, `2 {"n":2}`, `3 {"n":3}`, `4 {"n":4}`, `5 {"n":5}`}, logged,
		"in order, once each, at the offsets the subscriber saw")
	pub.Publish("s1", []byte(`{"n":6}`))
	ids, data = readN(t, sub, 1)
	require.Equal(t, []string{"6." + epoch}, ids, "nothing twice, no reset")
	require.Equal(t, []string{`{"n":6}`}, data)
}

// Events a subscriber got provisionally that never reach the log (the
// stream changed owner meanwhile) turn into a reset to the last confirmed
// position, followed by the log's own events: the subscriber is told, and
// a resume from its position is never silently wrong.
func TestSubscription_ProvisionalEventsTheLogDoesNotHaveAreReset(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	c := newNode(t, srv, Config{Node: "a"})
	hub := newHub(t, c)
	epoch := publishN(t, c, "s", 1, 2)
	sub, err := hub.Subscribe(t.Context(), "s", 0, "", 0)
	require.NoError(t, err)
	defer sub.Close()
	require.Equal(t, []uint64{1, 2}, []uint64{next(t, sub).Offset, next(t, sub).Offset})

	hub.provisional("s", Event{Offset: 3, Epoch: epoch, Payload: []byte("mine 3")})
	hub.provisional("s", Event{Offset: 4, Epoch: epoch, Payload: []byte("mine 4")})
	hub.provisional("s", Event{Offset: 9, Epoch: epoch, Payload: []byte("out of step")})
	for _, want := range []string{"mine 3", "mine 4"} {
		ev := next(t, sub)
		require.Equal(t, want, string(ev.Payload))
	}
	// The log's offset 3 is the provisional one: confirmed, not repeated.
	_, _, err = c.Publish(t.Context(), "s", []byte("mine 3"), LeaseFence{})
	require.NoError(t, err)
	// Its offset 4 is another writer's: reset to 3, then the log's 4.
	_, _, err = c.Publish(t.Context(), "s", []byte("theirs 4"), LeaseFence{})
	require.NoError(t, err)
	ev := next(t, sub)
	require.True(t, ev.Reset, "a reset, got %+v", ev)
	require.EqualValues(t, 3, ev.Offset)
	ev = next(t, sub)
	require.Equal(t, "theirs 4", string(ev.Payload))
	require.EqualValues(t, 4, ev.Offset)

	// Abandoned provisional events: reset to the confirmed position, then
	// the log continues.
	hub.provisional("s", Event{Offset: 5, Epoch: epoch, Payload: []byte("mine 5")})
	require.Equal(t, "mine 5", string(next(t, sub).Payload))
	hub.abandon("s")
	ev = next(t, sub)
	require.True(t, ev.Reset)
	require.EqualValues(t, 4, ev.Offset)
	_, _, err = c.Publish(t.Context(), "s", []byte("theirs 5"), LeaseFence{})
	require.NoError(t, err)
	ev = next(t, sub)
	require.Equal(t, "theirs 5", string(ev.Payload))
	require.EqualValues(t, 5, ev.Offset)
}

// A publish retried because its reply was lost finds its event already
// at the next offset and answers that offset instead of appending a copy.
func TestPublish_RetryOfALandedEventIsNotADuplicate(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	c := newNode(t, srv, Config{Node: "a"})
	ctx := t.Context()
	epoch := publishN(t, c, "s", 1, 1)
	off, ep, err := c.publishAfter(ctx, "s", []byte("two"), LeaseFence{}, 1, epoch)
	require.NoError(t, err)
	require.EqualValues(t, 2, off)
	off, ep2, err := c.publishAfter(ctx, "s", []byte("two"), LeaseFence{}, 1, epoch)
	require.NoError(t, err)
	require.EqualValues(t, 2, off, "the retry is the same event")
	require.Equal(t, ep, ep2)
	off, _, err = c.publishAfter(ctx, "s", []byte("two"), LeaseFence{}, 2, epoch)
	require.NoError(t, err)
	require.EqualValues(t, 3, off, "the same payload published again on purpose is a new event")
	h, err := c.ReadAfter(ctx, "s", 0, "")
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2, 3}, offsets(h.Events))
}

// A node whose lease lapsed (Redis was away longer than the TTL) is not
// Steady again until it has held the lease for a whole TTL, so it does not
// take the streams of nodes that have not had the time to come back.
func TestHeartbeat_SteadyOnlyATTLAfterALapse(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	c := newNode(t, srv, Config{Node: "a", LeaseRenew: 50 * time.Millisecond, LeaseTTL: 400 * time.Millisecond})
	hb, err := c.StartHeartbeat(t.Context())
	require.NoError(t, err)
	defer func() { require.NoError(t, hb.Stop(t.Context())) }()
	require.False(t, hb.Steady(), "just started")
	require.Eventually(t, hb.Steady, 2*time.Second, 10*time.Millisecond)

	require.NoError(t, srv.Pause())
	require.Eventually(t, func() bool { return !hb.Valid() }, 2*time.Second, 10*time.Millisecond)
	require.False(t, hb.Steady())
	require.NoError(t, srv.Resume())
	require.Eventually(t, hb.Valid, 2*time.Second, 10*time.Millisecond)
	back := time.Now()
	require.False(t, hb.Steady(), "valid again, not steady yet")
	require.Eventually(t, hb.Steady, 2*time.Second, 10*time.Millisecond)
	require.GreaterOrEqual(t, time.Since(back), 300*time.Millisecond, "steady a TTL after the renewal that took the lease back")
}

// A renewal that failed (Redis away for less than a TTL) costs the node
// its steadiness too, though its own lease never lapsed: the other nodes'
// renewals failed as well and their leases may have expired meanwhile, so
// it holds the lease again for a whole TTL before it judges them dead.
func TestHeartbeat_SteadyOnlyATTLAfterAFailedRenewal(t *testing.T) {
	t.Parallel()
	const ttl = time.Second
	srv := redistest.ForTest(t)
	c := newNode(t, srv, Config{Node: "a", LeaseRenew: 50 * time.Millisecond, LeaseTTL: ttl})
	hb, err := c.StartHeartbeat(t.Context())
	require.NoError(t, err)
	defer func() { require.NoError(t, hb.Stop(t.Context())) }()
	require.Eventually(t, hb.Steady, 3*time.Second, 10*time.Millisecond)

	require.NoError(t, srv.Pause())
	defer func() { _ = srv.Resume() }() // a failed check must not leave Redis stopped for Stop
	require.Eventually(t, func() bool { return hb.Err() != nil }, 2*time.Second, 5*time.Millisecond)
	require.True(t, hb.Valid(), "the lease has not lapsed")
	require.False(t, hb.Steady(), "a renewal failed")
	require.NoError(t, srv.Resume())
	require.Eventually(t, func() bool { return hb.Err() == nil }, 2*time.Second, 5*time.Millisecond)
	back := time.Now()
	require.False(t, hb.Steady(), "renewed again, not steady yet")
	require.Eventually(t, hb.Steady, 3*time.Second, 10*time.Millisecond)
	require.GreaterOrEqual(t, time.Since(back), ttl-100*time.Millisecond, "steady a TTL after the renewal that followed the failure")
}

// A Redis that comes back empty after the lease lapsed (an outage longer
// than the TTL, restarted without persistence) is a data loss, told from
// a plain expiry by the incarnation key: the WhenStoreLost callbacks run,
// so the node's streams are registered again. A lapse with the data kept
// (Redis paused past the TTL) runs none.
func TestHeartbeat_DataLossAfterALapseIsNoticed(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	c := newNode(t, srv, Config{Node: "a", LeaseRenew: 50 * time.Millisecond, LeaseTTL: 300 * time.Millisecond})
	hb, err := c.StartHeartbeat(t.Context())
	require.NoError(t, err)
	defer func() { require.NoError(t, hb.Stop(t.Context())) }()
	lost := make(chan struct{}, 4)
	hb.WhenStoreLost(func() { lost <- struct{}{} })

	require.NoError(t, srv.Pause())
	require.Eventually(t, func() bool { return !hb.Valid() }, 2*time.Second, 10*time.Millisecond)
	time.Sleep(400 * time.Millisecond) // the key expires meanwhile
	require.NoError(t, srv.Resume())
	require.Eventually(t, hb.Valid, 2*time.Second, 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	require.Empty(t, lost, "an expiry with the data kept is no data loss")

	require.NoError(t, srv.Kill())
	require.Eventually(t, func() bool { return !hb.Valid() }, 2*time.Second, 10*time.Millisecond)
	require.NoError(t, srv.Restart(t.Context())) // empty
	select {
	case <-lost:
	case <-time.After(3 * time.Second):
		t.Fatal("the data loss after the lapse went unnoticed")
	}
}

// A stream whose fence the registry forgot (it met the new owner's fence
// on a state save, so the stream moved) publishes nothing more, not even
// its end marker: written without a fence, that would end the new owner's
// log for every node's subscribers.
func TestEventPublisher_ForgottenFenceWritesNothing(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	c := newNode(t, srv, Config{Node: "a"})
	fences := &fixedFences{m: map[string]LeaseFence{}}
	pub := c.NewEventPublisher(fences, nil, slog.New(slog.DiscardHandler))
	defer pub.Close()
	registered(t, c, fences, "s1")
	pub.Open("s1")
	pub.Publish("s1", []byte(`{"n":1}`))
	require.Eventually(t, func() bool {
		h, err := c.ReadAfter(t.Context(), "s1", 0, "")
		return err == nil && len(h.Events) == 1
	}, 5*time.Second, 10*time.Millisecond)
	fences.mu.Lock()
	delete(fences.m, "s1") // as GatewayRegistry.SaveState does on ErrFenced
	fences.mu.Unlock()
	pub.Publish("s1", []byte(`{"n":2}`))
	pub.CloseTopic("s1")
	h, err := c.ReadAfter(t.Context(), "s1", 0, "")
	require.NoError(t, err)
	require.Len(t, h.Events, 1, "nothing written after the fence was forgotten: %v", h.Events)
}

// An event retried while Redis lost its data is published under the fence
// Restore gives the stream (epoch 1 again), not the one it had before (a
// stream once claimed has epoch 2 or more): with the old fence it would be
// refused as stale and the stream's owner would give it up.
func TestEventPublisher_RetryUsesTheFenceRestoreGave(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	c := newNode(t, srv, Config{Node: "a"})
	ctx := t.Context()
	fences := &fixedFences{m: map[string]LeaseFence{}}
	fenced := make(chan string, 1)
	pub := c.NewEventPublisher(fences, nil, slog.New(slog.DiscardHandler))
	pub.Fenced = func(id string) { fenced <- id }
	defer pub.Close()
	rec := StreamRecord{ID: "s1", JID: "u@example.org", Resource: "r"}
	_, err := c.Register(ctx, rec, Caps{})
	require.NoError(t, err)
	claimed, err := c.Claim(ctx, "s1", "a") // as after a takeover: epoch 2
	require.NoError(t, err)
	require.EqualValues(t, 2, claimed.Epoch)
	fences.set("s1", claimed)
	pub.Open("s1")

	require.NoError(t, srv.Restart(ctx)) // empty: the record is gone
	pub.Publish("s1", []byte(`{"n":1}`))
	time.Sleep(200 * time.Millisecond) // retried as not registered meanwhile
	restored, err := c.Register(ctx, rec, Caps{})
	require.NoError(t, err)
	require.EqualValues(t, 1, restored.Epoch)
	fences.set("s1", restored)
	require.Eventually(t, func() bool {
		h, err := c.ReadAfter(ctx, "s1", 0, "")
		return err == nil && len(h.Events) == 1
	}, 10*time.Second, 20*time.Millisecond, "the event lands under the restored fence")
	select {
	case id := <-fenced:
		t.Fatalf("stream %s given up as fenced", id)
	default:
	}
}
