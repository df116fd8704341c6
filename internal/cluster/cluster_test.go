package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/xmppgw/xmppgw/gateway"
	"github.com/xmppgw/xmppgw/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newNode is one gateway node's view of the cluster: its own client (so
// its own connections) on the shared Redis.
func newNode(t testing.TB, srv *redistest.Server, cfg Config) *Cluster {
	t.Helper()
	rdb, err := NewClient(srv.URL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	c, err := New(rdb, cfg)
	require.NoError(t, err)
	return c
}

func newHub(t testing.TB, c *Cluster) *Hub {
	t.Helper()
	h := c.NewHub()
	t.Cleanup(func() { require.NoError(t, h.Close()) })
	return h
}

// next waits for one event from s, passing over the Synced marker.
func next(t *testing.T, s *Subscription) Event {
	t.Helper()
	for {
		ev := nextOrSynced(t, s)
		if !ev.Synced {
			return ev
		}
	}
}

// nextOrSynced waits for one event from s, the Synced marker included.
func nextOrSynced(t *testing.T, s *Subscription) Event {
	t.Helper()
	select {
	case ev, ok := <-s.C:
		require.True(t, ok, "subscription ended: %v", s.Err())
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5 s")
		return Event{}
	}
}

func publishN(t *testing.T, c *Cluster, sid string, from, to int) string {
	t.Helper()
	var epoch string
	for i := from; i <= to; i++ {
		off, ep, err := c.Publish(t.Context(), sid, fmt.Appendf(nil, "ev %d", i), LeaseFence{})
		require.NoError(t, err)
		require.Equal(t, uint64(i), off)
		if epoch != "" {
			require.Equal(t, epoch, ep, "one epoch while the log lives")
		}
		epoch = ep
	}
	return epoch
}

func offsets(evs []Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Offset
	}
	return out
}

func TestPublish_ReadAfterRoundTrip(t *testing.T) {
	t.Parallel()
	c := newNode(t, redistest.ForTest(t), Config{Node: "a"})
	ctx := t.Context()

	h, err := c.ReadAfter(ctx, "s1", 0, "")
	require.NoError(t, err)
	require.True(t, h.Complete, "nothing asked, nothing missed")
	require.Empty(t, h.Epoch)
	require.Empty(t, h.Events)

	epoch := publishN(t, c, "s1", 1, 5)
	require.Len(t, epoch, 16)

	h, err = c.ReadAfter(ctx, "s1", 0, "")
	require.NoError(t, err)
	require.True(t, h.Complete)
	require.Equal(t, epoch, h.Epoch)
	require.Equal(t, uint64(5), h.Top)
	require.Equal(t, []uint64{1, 2, 3, 4, 5}, offsets(h.Events))
	require.Equal(t, "ev 3", string(h.Events[2].Payload))

	h, err = c.ReadAfter(ctx, "s1", 2, epoch)
	require.NoError(t, err)
	require.True(t, h.Complete)
	require.Equal(t, []uint64{3, 4, 5}, offsets(h.Events))

	h, err = c.ReadAfter(ctx, "s1", 5, epoch)
	require.NoError(t, err)
	require.True(t, h.Complete, "up to date")
	require.Empty(t, h.Events)

	// Payloads are bytes: commas, NUL and newlines survive both paths.
	raw := []byte("a,b,\x00\r\n,c")
	off, _, err := c.Publish(ctx, "s1", raw, LeaseFence{})
	require.NoError(t, err)
	h, err = c.ReadAfter(ctx, "s1", off-1, epoch)
	require.NoError(t, err)
	require.Equal(t, raw, h.Events[0].Payload)

	_, _, err = c.Publish(ctx, "bad{id}", nil, LeaseFence{})
	require.Error(t, err, "a brace would move the hash tag")
}

func TestReadAfter_BeyondWindowIsIncomplete(t *testing.T) {
	t.Parallel()
	c := newNode(t, redistest.ForTest(t), Config{Node: "a", ReplayWindow: 5})
	ctx := t.Context()
	epoch := publishN(t, c, "s", 1, 10)

	tests := []struct {
		name     string
		after    uint64
		epoch    string
		complete bool
		want     []uint64
	}{
		{"within the window", 7, epoch, true, []uint64{8, 9, 10}},
		{"just at the window's edge", 5, epoch, true, []uint64{6, 7, 8, 9, 10}},
		{"older than the window", 4, epoch, false, []uint64{6, 7, 8, 9, 10}},
		{"from the future", 11, epoch, false, []uint64{6, 7, 8, 9, 10}},
		{"offset without its epoch", 8, "", false, []uint64{6, 7, 8, 9, 10}},
		{"another epoch", 8, "0123456789abcdef", false, []uint64{6, 7, 8, 9, 10}},
		{"everything retained", 0, "", true, []uint64{6, 7, 8, 9, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := c.ReadAfter(ctx, "s", tt.after, tt.epoch)
			require.NoError(t, err)
			require.Equal(t, tt.complete, h.Complete)
			require.Equal(t, tt.want, offsets(h.Events), "the window is exact (MAXLEN without ~)")
			require.Equal(t, uint64(10), h.Top)
		})
	}
}

// A Redis restarted without persistence has lost every log: the next
// publish starts a new epoch at offset 1, and a client resuming with the
// old (offset, epoch) is told, not silently given the new log's events.
func TestRedisRestart_NewEpochMakesOldPositionsIncomplete(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	c := newNode(t, srv, Config{Node: "a"})
	ctx := t.Context()
	old := publishN(t, c, "s", 1, 3)

	require.NoError(t, srv.Restart(ctx))

	h, err := c.ReadAfter(ctx, "s", 3, old)
	require.NoError(t, err)
	require.False(t, h.Complete, "the history is gone")
	require.Empty(t, h.Epoch)

	off, epoch, err := c.Publish(ctx, "s", []byte("after"), LeaseFence{})
	require.NoError(t, err)
	require.Equal(t, uint64(1), off, "offsets restart")
	require.NotEqual(t, old, epoch, "with a new epoch")

	h, err = c.ReadAfter(ctx, "s", 3, old)
	require.NoError(t, err)
	require.False(t, h.Complete, "offset 3 of the old epoch is no position in the new one")
	require.Equal(t, epoch, h.Epoch)
	require.Equal(t, []uint64{1}, offsets(h.Events))

	h, err = c.ReadAfter(ctx, "s", 1, old)
	require.NoError(t, err)
	require.False(t, h.Complete, "not even when the offset exists in the new epoch")
}

// The subscriber joins while a publisher runs: subscribe-then-read must
// deliver every event exactly once, in order, whether it starts from
// nothing, from a position, or reads so slowly that its queue overflows.
func TestSubscription_MergeLosesAndDuplicatesNothing(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	pub := newNode(t, srv, Config{Node: "a", ReplayWindow: 4096})
	sub := newNode(t, srv, Config{Node: "b", ReplayWindow: 4096})
	hub := newHub(t, sub)
	ctx := t.Context()
	const total = 2000

	var published atomic.Int64
	var epoch atomic.Value
	pubDone := make(chan error, 1)
	go func() {
		for i := 1; i <= total; i++ {
			_, ep, err := pub.Publish(ctx, "s", fmt.Appendf(nil, "%d", i), LeaseFence{})
			if err != nil {
				pubDone <- err
				return
			}
			epoch.Store(ep)
			published.Store(int64(i))
		}
		pubDone <- nil
	}()
	waitPublished := func(n int64) {
		require.Eventually(t, func() bool { return published.Load() >= n }, 10*time.Second, time.Millisecond)
	}

	waitPublished(100)
	fromStart, err := hub.Subscribe(ctx, "s", 0, "", 0)
	require.NoError(t, err)
	waitPublished(300)
	mid := uint64(published.Load())
	fromMid, err := hub.Subscribe(ctx, "s", mid, epoch.Load().(string), 0)
	require.NoError(t, err)
	slow, err := hub.Subscribe(ctx, "s", 0, "", 2) // tiny queue: overflow, then resync
	require.NoError(t, err)

	check := func(name string, s *Subscription, from uint64, slowly bool) error {
		want := from + 1
		for want <= total {
			select {
			case ev, ok := <-s.C:
				if !ok {
					return fmt.Errorf("%s: ended at %d: %v", name, want, s.Err())
				}
				if ev.Synced {
					continue
				}
				if ev.Reset || ev.Offset != want || string(ev.Payload) != fmt.Sprint(want) {
					return fmt.Errorf("%s: want %d, got %+v", name, want, ev)
				}
				want++
				if slowly && want%200 == 0 {
					time.Sleep(20 * time.Millisecond) // the slow reader under test
				}
			case <-time.After(10 * time.Second):
				return fmt.Errorf("%s: stuck waiting for %d", name, want)
			}
		}
		select {
		case ev := <-s.C:
			return fmt.Errorf("%s: extra event %+v", name, ev)
		case <-time.After(50 * time.Millisecond):
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, c := range []struct {
		name   string
		s      *Subscription
		from   uint64
		slowly bool
	}{{"from start", fromStart, 0, false}, {"from mid", fromMid, mid, false}, {"slow", slow, 0, true}} {
		wg.Go(func() { errs <- check(c.name, c.s, c.from, c.slowly) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, <-pubDone)

	fromStart.Close()
	require.ErrorIs(t, fromStart.Err(), ErrClosed)
	_, open := <-fromStart.C
	require.False(t, open, "C is closed after Close")
}

// After Redis lost its data the Hub reconnects and resubscribes; the
// Subscription reports the break with a Reset and continues in the new
// epoch.
func TestSubscription_RedisRestartGivesResetThenNewEpoch(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	pub := newNode(t, srv, Config{Node: "a"})
	sub := newNode(t, srv, Config{Node: "b", PingInterval: 100 * time.Millisecond})
	hub := newHub(t, sub)
	ctx := t.Context()

	s, err := hub.Subscribe(ctx, "s", 0, "", 0)
	require.NoError(t, err)
	old := publishN(t, pub, "s", 1, 3)
	for i := uint64(1); i <= 3; i++ {
		ev := next(t, s)
		require.Equal(t, i, ev.Offset)
		require.Equal(t, old, ev.Epoch)
	}

	require.NoError(t, srv.Restart(ctx))
	off, epoch, err := pub.Publish(ctx, "s", []byte("new"), LeaseFence{})
	require.NoError(t, err)
	require.Equal(t, uint64(1), off)

	ev := next(t, s)
	require.True(t, ev.Reset, "the break is reported: %+v", ev)
	require.Equal(t, epoch, ev.Epoch)
	require.Equal(t, uint64(0), ev.Offset)
	ev = next(t, s)
	require.False(t, ev.Reset)
	require.Equal(t, uint64(1), ev.Offset)
	require.Equal(t, "new", string(ev.Payload))

	// Live delivery works again on the new connection.
	_, _, err = pub.Publish(ctx, "s", []byte("live"), LeaseFence{})
	require.NoError(t, err)
	ev = next(t, s)
	require.Equal(t, uint64(2), ev.Offset)
}

// A hung Redis (SIGSTOP) keeps the TCP connection open: the Hub's
// watchdog must notice the silence, reconnect once Redis answers again,
// and the Subscription must carry on without losing the events published
// since (issue 18: Redis outage).
func TestSubscription_SurvivesHungRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	pub := newNode(t, srv, Config{Node: "a"})
	sub := newNode(t, srv, Config{Node: "b", PingInterval: 100 * time.Millisecond})
	hub := newHub(t, sub)
	ctx := t.Context()

	s, err := hub.Subscribe(ctx, "s", 0, "", 0)
	require.NoError(t, err)
	publishN(t, pub, "s", 1, 2)
	require.Equal(t, uint64(1), next(t, s).Offset)
	require.Equal(t, uint64(2), next(t, s).Offset)

	require.NoError(t, srv.Pause())
	require.Eventually(t, func() bool { return hub.Reconnects() > 0 }, 5*time.Second, 10*time.Millisecond,
		"the watchdog gives up on a silent connection")
	require.NoError(t, srv.Resume())

	publishN(t, pub, "s", 3, 5)
	for i := uint64(3); i <= 5; i++ {
		ev := next(t, s)
		require.False(t, ev.Reset)
		require.Equal(t, i, ev.Offset)
	}
}

func TestSubscription_EndsWithItsContextAndTheHub(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	c := newNode(t, srv, Config{Node: "a"})
	hub := c.NewHub()

	ctx, cancel := context.WithCancel(t.Context())
	s1, err := hub.Subscribe(ctx, "s", 0, "", 0)
	require.NoError(t, err)
	s2, err := hub.Subscribe(t.Context(), "s", 0, "", 0)
	require.NoError(t, err)

	cancel()
	for ev := range s1.C { // at most the Synced marker is still queued
		require.True(t, ev.Synced, "%+v", ev)
	}
	require.ErrorIs(t, s1.Err(), context.Canceled)

	require.NoError(t, hub.Close())
	for ev := range s2.C {
		require.True(t, ev.Synced, "%+v", ev)
	}
	require.ErrorIs(t, s2.Err(), ErrClosed)
	_, err = hub.Subscribe(t.Context(), "s", 0, "", 0)
	require.ErrorIs(t, err, ErrClosed)
}

// A replaced owner cannot publish: Claim raises the lease epoch and the
// publish script checks it (issue 18, split brain).
func TestPublish_StaleFenceAfterClaimFails(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	a := newNode(t, srv, Config{Node: "a"})
	b := newNode(t, srv, Config{Node: "b"})
	ctx := t.Context()

	fa, err := a.Register(ctx, StreamRecord{ID: "s", JID: "alice@localhost", Resource: "r1", OnBehalf: true}, Caps{})
	require.NoError(t, err)
	require.Equal(t, LeaseFence{Node: "a", Epoch: 1}, fa)
	_, _, err = a.Publish(ctx, "s", []byte("1"), fa)
	require.NoError(t, err)

	fb, err := b.Claim(ctx, "s", "a")
	require.NoError(t, err)
	require.Equal(t, LeaseFence{Node: "b", Epoch: 2}, fb)

	_, _, err = a.Publish(ctx, "s", []byte("from the old owner"), fa)
	require.ErrorIs(t, err, ErrFenced)
	require.ErrorIs(t, a.SetState(ctx, "s", fa, map[string]string{StatePresence: "x"}), ErrFenced)
	require.ErrorIs(t, a.Unregister(ctx, "s", fa), ErrFenced)
	_, err = a.Claim(ctx, "s", "a")
	require.ErrorIs(t, err, ErrClaimLost, "one claimer per stream")

	off, _, err := b.Publish(ctx, "s", []byte("2"), fb)
	require.NoError(t, err)
	require.Equal(t, uint64(2), off, "offsets continue across owners")

	require.NoError(t, b.SetState(ctx, "s", fb, map[string]string{StatePresence: "<presence/>", StateLastArchiveID: "m-9"}))
	rec, err := a.Get(ctx, "s")
	require.NoError(t, err)
	require.Equal(t, "b", rec.Owner)
	require.Equal(t, fb, rec.Fence())
	require.Equal(t, "alice@localhost", rec.JID)
	require.Equal(t, "r1", rec.Resource)
	require.True(t, rec.OnBehalf)
	require.WithinDuration(t, time.Now(), rec.Created, time.Minute)
	require.Equal(t, map[string]string{StatePresence: "<presence/>", StateLastArchiveID: "m-9"}, rec.State)

	aStreams, err := a.NodeStreams(ctx, "a")
	require.NoError(t, err)
	require.Empty(t, aStreams)
	bStreams, err := a.NodeStreams(ctx, "b")
	require.NoError(t, err)
	require.Equal(t, []string{"s"}, bStreams)

	_, _, err = a.Publish(ctx, "nobody", []byte("x"), fa)
	require.ErrorIs(t, err, ErrNotRegistered)
}

// Only one of several racing survivors wins a claim.
func TestClaim_OneWinner(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	dead := newNode(t, srv, Config{Node: "dead"})
	ctx := t.Context()
	_, err := dead.Register(ctx, StreamRecord{ID: "s", JID: "alice@localhost"}, Caps{})
	require.NoError(t, err)

	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		c := newNode(t, srv, Config{Node: fmt.Sprintf("n%d", i)})
		wg.Go(func() {
			_, err := c.Claim(ctx, "s", "dead")
			if err == nil {
				wins.Add(1)
			} else if !errors.Is(err, ErrClaimLost) {
				t.Errorf("claim: %v", err)
			}
		})
	}
	wg.Wait()
	require.Equal(t, int32(1), wins.Load())
}

func TestRegister_CapsCountAcrossNodes(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	a := newNode(t, srv, Config{Node: "a"})
	b := newNode(t, srv, Config{Node: "b"})
	ctx := t.Context()
	caps := Caps{PerUser: 2, Total: 4}
	rec := func(id, jid string) StreamRecord { return StreamRecord{ID: id, JID: jid} }

	fa, err := a.Register(ctx, rec("a1", "alice@localhost"), caps)
	require.NoError(t, err)
	_, err = b.Register(ctx, rec("b1", "alice@localhost"), caps)
	require.NoError(t, err)
	_, err = a.Register(ctx, rec("a2", "alice@localhost"), caps)
	require.ErrorIs(t, err, ErrUserCap, "the cap counts node b's stream too")
	_, err = b.Register(ctx, rec("b2", "alice@localhost"), caps)
	require.ErrorIs(t, err, ErrUserCap)
	_, err = b.Register(ctx, rec("a1", "bob@localhost"), caps)
	require.ErrorIs(t, err, ErrStreamExists)

	_, err = a.Register(ctx, rec("a3", "bob@localhost"), caps)
	require.NoError(t, err)
	_, err = b.Register(ctx, rec("b3", "carol@localhost"), caps)
	require.NoError(t, err)
	_, err = a.Register(ctx, rec("a4", "dave@localhost"), caps)
	require.ErrorIs(t, err, ErrTotalCap)

	list, err := b.List(ctx)
	require.NoError(t, err)
	owners := map[string]string{}
	for _, r := range list {
		owners[r.ID] = r.Owner
	}
	require.Equal(t, map[string]string{"a1": "a", "b1": "b", "a3": "a", "b3": "b"}, owners, "b lists a's streams")

	require.NoError(t, a.Unregister(ctx, "a1", fa))
	_, err = b.Get(ctx, "a1")
	require.ErrorIs(t, err, ErrNotRegistered)
	_, err = b.Register(ctx, rec("b2", "alice@localhost"), caps)
	require.NoError(t, err, "the freed slot is usable from any node")
	require.ErrorIs(t, a.Unregister(ctx, "a1", LeaseFence{}), ErrNotRegistered)

	// Racing registrations from both nodes never overshoot the cap.
	var ok atomic.Int32
	var wg sync.WaitGroup
	for i := range 10 {
		c := a
		if i%2 == 1 {
			c = b
		}
		wg.Go(func() {
			_, err := c.Register(ctx, rec(fmt.Sprintf("race%d", i), "erin@localhost"), Caps{PerUser: 3})
			if err == nil {
				ok.Add(1)
			} else if !errors.Is(err, ErrUserCap) {
				t.Errorf("register: %v", err)
			}
		})
	}
	wg.Wait()
	require.Equal(t, int32(3), ok.Load())
}

func TestHeartbeat_LeaseExpiry(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	short := Config{LeaseRenew: 50 * time.Millisecond, LeaseTTL: 300 * time.Millisecond}
	a := newNode(t, srv, Config{Node: "a", Advertise: "10.0.0.1:9090", LeaseRenew: short.LeaseRenew, LeaseTTL: short.LeaseTTL})
	b := newNode(t, srv, Config{Node: "b"})
	ctx := t.Context()

	alive, err := b.NodeAlive(ctx, "a")
	require.NoError(t, err)
	require.False(t, alive, "no lease before the heartbeat starts")

	hbCtx, stopRenewing := context.WithCancel(ctx)
	hb, err := a.StartHeartbeat(hbCtx)
	require.NoError(t, err)
	require.True(t, hb.Valid())
	alive, err = b.NodeAlive(ctx, "a")
	require.NoError(t, err)
	require.True(t, alive)
	addr, alive, err := b.NodeAddr(ctx, "a")
	require.NoError(t, err)
	require.True(t, alive)
	require.Equal(t, "10.0.0.1:9090", addr, "where forwarded requests go")

	// Renewals keep it alive well past one TTL.
	time.Sleep(3 * short.LeaseTTL) // the lease must outlive this on renewals alone
	alive, err = b.NodeAlive(ctx, "a")
	require.NoError(t, err)
	require.True(t, alive, "renewed every %v", short.LeaseRenew)

	// A node that stops renewing (crash, pause) is dead after the TTL.
	stopRenewing()
	require.Eventually(t, func() bool {
		alive, err := b.NodeAlive(ctx, "a")
		return err == nil && !alive
	}, 5*time.Second, 20*time.Millisecond)
	require.False(t, hb.Valid(), "the node knows its lease lapsed")
	_, alive, err = b.NodeAddr(ctx, "a")
	require.NoError(t, err)
	require.False(t, alive)
	require.NoError(t, hb.Stop(ctx))

	// Redis unreachable: renewals fail and Valid turns false by itself.
	hb2, err := a.StartHeartbeat(ctx)
	require.NoError(t, err)
	require.NoError(t, srv.Pause())
	require.Eventually(t, func() bool { return !hb2.Valid() && hb2.Err() != nil }, 5*time.Second, 20*time.Millisecond)
	require.NoError(t, srv.Resume())
	require.Eventually(t, hb2.Valid, 5*time.Second, 20*time.Millisecond, "valid again once renewals succeed")
	require.NoError(t, hb2.Stop(ctx))
	alive, err = b.NodeAlive(ctx, "a")
	require.NoError(t, err)
	require.False(t, alive, "Stop drops the lease at once")
}

func TestRevocation_ReachesOtherNode(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	a := newNode(t, srv, Config{Node: "a"})
	b := newNode(t, srv, Config{Node: "b"})
	hub := newHub(t, b)
	ctx := t.Context()

	w, err := hub.WatchRevocations(ctx, 0)
	require.NoError(t, err)
	t.Cleanup(w.Close)

	until := time.Now().Add(time.Minute)
	start := time.Now()
	require.NoError(t, a.Revoke(ctx, "jti,with,commas", until))
	select {
	case r := <-w.C:
		require.Less(t, time.Since(start), time.Second, "issue 17: every node within 1 s")
		require.Equal(t, "jti,with,commas", r.JTI)
		require.Equal(t, until.UnixMilli(), r.Until.UnixMilli())
		require.False(t, r.Resync)
	case <-time.After(5 * time.Second):
		t.Fatal("revocation not delivered")
	}
	revoked, err := b.Revoked(ctx, "jti,with,commas")
	require.NoError(t, err)
	require.True(t, revoked)
	ttl, err := b.Redis().PTTL(ctx, b.Keys().Revoked("jti,with,commas")).Result()
	require.NoError(t, err)
	require.InDelta(t, time.Minute.Seconds(), ttl.Seconds(), 5, "kept until the token's expiry")

	require.NoError(t, a.Revoke(ctx, "expired", time.Now().Add(-time.Second)))
	revoked, err = b.Revoked(ctx, "expired")
	require.NoError(t, err)
	require.False(t, revoked, "an expired token needs no revocation")

	revoked, err = b.Revoked(ctx, "other")
	require.NoError(t, err)
	require.False(t, revoked)
}

func TestParseFrame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Event
		wantErr bool
	}{
		{in: "7,abc,hello", want: Event{Offset: 7, Epoch: "abc", Payload: []byte("hello")}},
		{in: "7,abc,", want: Event{Offset: 7, Epoch: "abc", Payload: []byte{}}},
		{in: "7,abc,a,b,c", want: Event{Offset: 7, Epoch: "abc", Payload: []byte("a,b,c")}},
		{in: "7,abc", wantErr: true},
		{in: ",abc,x", wantErr: true},
		{in: "0,abc,x", wantErr: true},
		{in: "x,abc,x", wantErr: true},
		{in: "7,,x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseFrame(tt.in)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestConfigAndURLs(t *testing.T) {
	t.Parallel()
	_, err := New(nil, Config{Name: "bad{tag}"})
	require.Error(t, err)
	_, err = New(nil, Config{LeaseRenew: time.Second, LeaseTTL: time.Second})
	require.Error(t, err)
	c, err := New(nil, Config{})
	require.NoError(t, err)
	require.Equal(t, DefaultName, c.Keys().Prefix())
	require.NotEmpty(t, c.Node())
	require.Equal(t, "xmppgw:{s1}:events", c.Keys().Events("s1"))

	for _, u := range []string{
		"redis://127.0.0.1:6379/0",
		"redis://127.0.0.1:26379/0?master_name=mymaster&addr=127.0.0.1:26380",
		"redis+cluster://127.0.0.1:7000?addr=127.0.0.1:7001",
	} {
		rdb, err := NewClient(u)
		require.NoError(t, err, u)
		require.NoError(t, rdb.Close())
	}
	_, err = NewClient("http://x")
	require.Error(t, err)
}

// Redis restarted without persistence loses every record; the node notices
// at its next renewal (its lease key is gone though the lease was valid)
// and registers its streams again with their last saved state, while a
// stream another node has re-registered meanwhile is left to it. The
// publisher rides the gap out: the stream's events resume under the new
// fence instead of the stream being given up.
func TestGatewayRegistry_RestoresStreamsAfterRedisLostItsData(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	a := newNode(t, srv, Config{Node: "a", Advertise: "10.0.0.1:9090", LeaseRenew: 50 * time.Millisecond, LeaseTTL: 2 * time.Second})
	b := newNode(t, srv, Config{Node: "b"})
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	reg := a.NewGatewayRegistry(Caps{PerUser: 5, Total: 100}, log)
	hb, err := a.StartHeartbeat(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = hb.Stop(context.Background()) })
	restored := make(chan struct{}, 1)
	bRegistered := make(chan struct{}) // the restore waits for node b's move
	hb.WhenStoreLost(func() {
		<-bRegistered
		reg.Restore(ctx)
		restored <- struct{}{}
	})

	kept, taken := "s-kept-0123456789abcdef", "s-taken-0123456789abcde"
	for _, id := range []string{kept, taken} {
		require.NoError(t, reg.Register(ctx, gateway.RegisteredStream{ID: id, JID: "alice@example.com", Resource: "web.1"}))
	}
	require.NoError(t, reg.SaveState(ctx, kept, gateway.TakeoverState{Presence: gateway.OutgoingPresence{Show: "away"}}))
	pub := a.NewEventPublisher(reg, nil, log)
	t.Cleanup(pub.Close)
	pub.Open(kept)
	pub.Publish(kept, []byte(`{"type":"chat","n":1}`))
	logged := func(n string) bool {
		h, err := a.ReadAfter(ctx, kept, 0, "")
		if err != nil {
			return false
		}
		for _, ev := range h.Events {
			if strings.Contains(string(ev.Payload), `"n":`+n) {
				return true
			}
		}
		return false
	}
	require.Eventually(t, func() bool { return logged("1") }, 5*time.Second, 10*time.Millisecond)

	require.NoError(t, srv.Restart(ctx)) // empty: nothing persisted
	// Before a restores, node b registers "taken" under its own name.
	_, err = b.Register(ctx, StreamRecord{ID: taken, JID: "alice@example.com", Resource: "web.1"}, Caps{})
	close(bRegistered)
	require.NoError(t, err)
	pub.Publish(kept, []byte(`{"type":"chat","n":2}`)) // lands in the gap: retried, not dropped

	select {
	case <-restored:
	case <-time.After(5 * time.Second):
		t.Fatal("the lost lease key was not noticed")
	}
	rec, err := b.Get(ctx, kept)
	require.NoError(t, err, "the stream is registered again")
	require.Equal(t, "a", rec.Owner)
	require.Contains(t, rec.State[StatePresence], `"show":"away"`, "with its last state")
	rec, err = b.Get(ctx, taken)
	require.NoError(t, err)
	require.Equal(t, "b", rec.Owner, "a record that exists is left alone")
	require.NoError(t, reg.SaveState(ctx, kept, gateway.TakeoverState{}), "the new fence holds")
	require.ErrorIs(t, reg.SaveState(ctx, taken, gateway.TakeoverState{}), gateway.ErrNotOwner)
	require.Eventually(t, func() bool { return logged("2") }, 5*time.Second, 10*time.Millisecond,
		"the event published in the gap reached the new log")
}
