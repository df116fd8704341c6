package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/xmppgw/xmppgw/gateway"
	"github.com/xmppgw/xmppgw/internal/cluster"
	"github.com/xmppgw/xmppgw/internal/redistest"
)

// In cluster mode /readyz also needs the cluster: a node whose Redis is
// gone (or whose lease lapsed) is taken out of the load balancer.
func TestReadyz_ClusterMode(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	e := newEnv(t, envOptions{api: Config{ClusterReady: func(context.Context) error {
		if down.Load() {
			return errors.New("dial tcp 127.0.0.1:6379: connection refused")
		}
		return nil
	}}})
	res, body := e.do(http.MethodGet, "/readyz", "", nil, "")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	down.Store(true)
	res, body = e.do(http.MethodGet, "/readyz", "", nil, "")
	er := requireError(t, res, body, http.StatusServiceUnavailable)
	require.Equal(t, 50305, er.Code)
	require.Contains(t, er.Error, "connection refused")
}

// The internal listener's routes want the cluster secret and nothing else.
func TestClusterRoutes_NeedTheClusterSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	secret := strings.Repeat("k", 32)
	h := e.srv.ClusterRoutes([]byte(secret))
	for _, tt := range []struct {
		header, value string
		want          int
	}{
		{"", "", http.StatusUnauthorized},
		{clusterSecretHeader, secret[:31], http.StatusUnauthorized},
		{clusterSecretHeader, secret + "x", http.StatusUnauthorized},
		{"Authorization", "Bearer " + secret, http.StatusUnauthorized},
		{clusterSecretHeader, secret, http.StatusOK},
	} {
		req := httptest.NewRequest(http.MethodGet, "/internal/v1/ping", nil)
		if tt.header != "" {
			req.Header.Set(tt.header, tt.value)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, tt.want, rec.Code, "%s %q: %s", tt.header, tt.value, rec.Body.String())
		if tt.want != http.StatusOK {
			require.Contains(t, rec.Body.String(), `"code":40100`)
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/internal/v1/nothing", nil)
	req.Header.Set(clusterSecretHeader, secret)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusNotFound, rec.Code)
}

// node is a second gateway node in one test process: its own Server (same
// JWT secret, same streams) with its own handle on the cluster's Redis.
func (e *testEnv) node(t *testing.T, store RevocationStore) (*testEnv, *Server) {
	t.Helper()
	cfg := e.srv.cfg
	cfg.Revocations = store
	srv := NewServer(cfg, ManagerStreams(e.mgr), e.broker, nil)
	hs := httptest.NewServer(srv.Routes())
	t.Cleanup(hs.Close)
	other := *e
	other.srv, other.http = srv, hs
	return &other, srv
}

func clusterStore(t *testing.T, r *redistest.Server, node string) *cluster.Cluster {
	t.Helper()
	return clusterStoreAt(t, r, node, "")
}

// A token revoked on one node is refused by every node: at once by a node
// that hears the broadcast (its event streams end), and on first use by a
// node that never saw the token. While Redis is down a revocation fails
// whole (503), so the same token can retry.
func TestRevocations_SharedAcrossNodes(t *testing.T) {
	t.Parallel()
	r := redistest.ForTest(t)
	storeA, storeB, storeC := clusterStore(t, r, "a"), clusterStore(t, r, "b"), clusterStore(t, r, "c")
	a := newEnv(t, envOptions{api: Config{Revocations: storeA}})
	b, srvB := a.node(t, storeB)
	c, _ := a.node(t, storeC)

	// Node B follows the broadcasts, as cmd/xmppgw wires it.
	hub := storeB.NewHub()
	t.Cleanup(func() { _ = hub.Close() })
	watch, err := hub.WatchRevocations(t.Context(), 0)
	require.NoError(t, err)
	t.Cleanup(watch.Close)
	go func() {
		for rev := range watch.C {
			if rev.Resync {
				_ = srvB.ResyncRevocations(context.Background())
				continue
			}
			srvB.ApplyRevocation(rev.JTI, rev.Until)
		}
	}()

	user := a.login(a.newUser("rev"))
	path := "/restapi/v1/chat/" + user.StreamID + "/rooms"
	res, body := b.do(http.MethodGet, path, user.Token, nil, "")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	events := b.subscribe("/restapi/v1/chat/"+user.StreamID+"/events", bearerHeader(user.Token))
	second := a.post(user, http.MethodPost, "/token", nil, http.StatusOK)
	var refreshed struct{ Token string }
	require.NoError(t, json.Unmarshal([]byte(second), &refreshed))

	res, body = a.do(http.MethodDelete, "/restapi/v1/chat/token", user.Token, nil, "")
	require.Equal(t, http.StatusNoContent, res.StatusCode, body)
	events.waitEnd(t, time.Second)
	res, body = b.do(http.MethodGet, path, user.Token, nil, "")
	require.Equal(t, 40103, requireError(t, res, body, http.StatusUnauthorized).Code, "node B heard of it")
	res, body = c.do(http.MethodGet, path, user.Token, nil, "")
	require.Equal(t, 40103, requireError(t, res, body, http.StatusUnauthorized).Code, "node C, which never saw the token, asked Redis")
	// The other token of the stream is untouched on every node.
	for _, n := range []*testEnv{a, b, c} {
		res, body = n.do(http.MethodGet, path, refreshed.Token, nil, "")
		require.Equal(t, http.StatusOK, res.StatusCode, body)
	}

	require.NoError(t, r.Kill())
	res, body = a.do(http.MethodDelete, "/restapi/v1/chat/token", refreshed.Token, nil, "")
	require.Equal(t, 50305, requireError(t, res, body, http.StatusServiceUnavailable).Code)
	res, body = a.do(http.MethodGet, path, refreshed.Token, nil, "")
	require.Equal(t, http.StatusOK, res.StatusCode, "nothing was revoked, so the caller can retry: %s", body)
}

// The stream caps count across nodes: a user at XMPPGW_MAX_STREAMS_PER_USER
// on node A is refused on node B too (before any XMPP login), gets the slot
// back when the stream ends, and no stream is admitted while the registry
// is unreachable.
func TestStreamCaps_CountClusterWide(t *testing.T) {
	t.Parallel()
	r := redistest.ForTest(t)
	storeA, storeB := clusterStore(t, r, "a"), clusterStore(t, r, "b")
	caps := cluster.Caps{PerUser: 1, Total: 100}
	var apiA, apiB Config
	apiA.NodeName, apiA.ClusterStreams = "a", storeA.List
	apiB.NodeName, apiB.ClusterStreams = "b", storeB.List
	a := newEnv(t, envOptions{api: apiA, gateway: gateway.Config{Registry: storeA.NewGatewayRegistry(caps, slog.New(slog.DiscardHandler))}})
	b := newEnv(t, envOptions{api: apiB, xmpp: a.xmpp, gateway: gateway.Config{Registry: storeB.NewGatewayRegistry(caps, slog.New(slog.DiscardHandler))}})
	user, pass := a.newUser("capped")
	first := a.login(user, pass)

	recs, err := storeB.List(t.Context())
	require.NoError(t, err)
	require.Len(t, recs, 1, "node B sees node A's stream")
	require.Equal(t, first.StreamID, recs[0].ID)
	require.Equal(t, "a", recs[0].Owner)
	require.Equal(t, bare(first.JID), recs[0].JID)

	// The admin list on either node shows the whole cluster.
	for _, n := range []struct {
		e     *testEnv
		state string
	}{{a, "online"}, {b, "remote"}} {
		res, body := n.e.doH(http.MethodGet, "/restapi/v1/admin/streams", adminHeader(), nil, "")
		require.Equal(t, http.StatusOK, res.StatusCode, body)
		var list StreamList
		require.NoError(t, json.Unmarshal([]byte(body), &list))
		require.Len(t, list.Streams, 1, body)
		got := list.Streams[0]
		require.Equal(t, first.StreamID, got.StreamID)
		require.Equal(t, first.JID, got.JID)
		require.Equal(t, "a", got.Node)
		require.Equal(t, n.state, got.State)
	}

	login := func(e *testEnv) (*http.Response, string) {
		return e.do(http.MethodPost, "/restapi/v1/chat/"+user+"/login", "", jsonBody(map[string]string{"password": pass}), "application/json")
	}
	res, body := login(b)
	require.Equal(t, 42902, requireError(t, res, body, http.StatusTooManyRequests).Code)
	recs, err = storeA.List(t.Context())
	require.NoError(t, err)
	require.Len(t, recs, 1, "node B admitted nothing (its own count for the user was 0)")

	a.post(first, http.MethodPost, "/logoff", nil, http.StatusNoContent)
	require.Eventually(t, func() bool {
		recs, err := storeA.List(t.Context())
		return err == nil && len(recs) == 0
	}, 10*time.Second, 50*time.Millisecond, "the ended stream leaves the registry")
	second := b.login(user, pass)
	recs, err = storeA.List(t.Context())
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.Equal(t, second.StreamID, recs[0].ID)
	require.Equal(t, "b", recs[0].Owner)

	require.NoError(t, r.Kill())
	other, otherPass := a.newUser("late")
	res, body = a.do(http.MethodPost, "/restapi/v1/chat/"+other+"/login", "", jsonBody(map[string]string{"password": otherPass}), "application/json")
	require.Equal(t, 50305, requireError(t, res, body, http.StatusServiceUnavailable).Code)
	res, body = b.doH(http.MethodGet, "/restapi/v1/admin/streams", adminHeader(), nil, "")
	require.Equal(t, 50305, requireError(t, res, body, http.StatusServiceUnavailable).Code)
	// The stream already open goes on.
	b.post(second, http.MethodPost, "/presence", map[string]any{"show": "away"}, http.StatusNoContent)
}

// Any node accepts any request: node B has no connection for a stream node
// A owns, so it proxies the request over A's internal listener, and the
// caller gets what A would have answered — the same status and error JSON,
// live events included.
func TestForwarding_AnyNodeServesAnyStream(t *testing.T) {
	t.Parallel()
	r := redistest.ForTest(t)
	secret := []byte(strings.Repeat("s", 32))
	internalA := httptest.NewUnstartedServer(nil)
	storeA := clusterStoreAt(t, r, "a", internalA.Listener.Addr().String())
	storeB := clusterStoreAt(t, r, "b", "127.0.0.1:1")
	beat, err := storeA.StartHeartbeat(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = beat.Stop(context.Background()) })
	quiet := slog.New(slog.DiscardHandler)
	caps := cluster.Caps{PerUser: 10, Total: 100}
	a := newEnv(t, envOptions{api: Config{Forward: storeA, ClusterSecret: secret},
		gateway: gateway.Config{Registry: storeA.NewGatewayRegistry(caps, quiet)}})
	b := newEnv(t, envOptions{xmpp: a.xmpp, api: Config{Forward: storeB, ClusterSecret: secret},
		gateway: gateway.Config{Registry: storeB.NewGatewayRegistry(caps, quiet)}})
	internalA.Config.Handler = a.srv.ClusterRoutes(secret)
	internalA.Start()
	t.Cleanup(internalA.Close)

	alice, bob := a.login(a.newUser("fwa")), a.login(a.newUser("fwb"))
	bobEv := a.subscribe("/restapi/v1/chat/"+bob.StreamID+"/events", bearerHeader(bob.Token))
	aliceEvViaB := b.subscribe("/restapi/v1/chat/"+alice.StreamID+"/events", bearerHeader(alice.Token))

	// A send through B reaches bob; its id comes back as from A.
	b.post(alice, http.MethodPost, "/messages/"+bare(bob.JID), "via node B", http.StatusAccepted)
	_, got := bobEv.next(t, func(m map[string]any) bool { return m["body"] == "via node B" })
	require.Equal(t, alice.JID, got["from"])
	// An event for alice reaches her EventSource on B, live.
	a.post(bob, http.MethodPost, "/messages/"+bare(alice.JID), "to alice on B", http.StatusAccepted)
	aliceEvViaB.next(t, func(m map[string]any) bool { return m["body"] == "to alice on B" })
	// So does a WebSocket opened on B: commands run on A.
	ws, _, err := b.dialWS(t, "/restapi/v1/chat/"+alice.StreamID+"/ws", bearerHeader(alice.Token))
	require.NoError(t, err)
	ws.send(t, map[string]any{"type": "message", "id": "w1", "to": bare(bob.JID), "body": "ws via B"})
	require.Equal(t, "ok", ws.next(t, replyTo("w1"))["type"])
	bobEv.next(t, func(m map[string]any) bool { return m["body"] == "ws via B" })
	// The summary form (the token names the stream) is forwarded too.
	b.post(alice, http.MethodPost, "/presence", map[string]any{"show": "away"}, http.StatusNoContent)
	// Errors are the owner's, byte for byte apart from the request id.
	for _, n := range []*testEnv{a, b} {
		res, body := n.do(http.MethodPost, "/restapi/v1/chat/"+alice.StreamID+"/messages/"+url.PathEscape("a@b@c"), alice.Token, strings.NewReader("x"), "text/plain")
		require.Equal(t, 40002, requireError(t, res, body, http.StatusBadRequest).Code)
		res, body = n.do(http.MethodGet, "/restapi/v1/chat/"+alice.StreamID+"/rooms", bob.Token, nil, "")
		require.Equal(t, 40401, requireError(t, res, body, http.StatusNotFound).Code, "bob's token does not reach alice's stream on any node")
	}
	// An admin on B closes a stream A holds.
	res, body := b.doH(http.MethodDelete, "/restapi/v1/admin/streams/"+bob.StreamID, adminHeader(), nil, "")
	require.Equal(t, http.StatusNoContent, res.StatusCode, body)
	bobEv.waitEnd(t, 5*time.Second)
	_, err = a.mgr.Stream(bob.StreamID)
	require.Error(t, err, "the stream is gone on its owner")
	// A stream nobody has is B's own 404.
	res, body = b.do(http.MethodGet, "/restapi/v1/chat/nosuchstream/rooms", alice.Token, nil, "")
	require.Equal(t, 40401, requireError(t, res, body, http.StatusNotFound).Code)
	// The owner's listener gone: 503, not a hang or a wrong 404.
	internalA.Close()
	res, body = b.do(http.MethodGet, "/restapi/v1/chat/"+alice.StreamID+"/rooms", alice.Token, nil, "")
	require.Equal(t, 50305, requireError(t, res, body, http.StatusServiceUnavailable).Code)
	require.Equal(t, "2", res.Header.Get("Retry-After"), "a client knows when to try again")
}

func clusterStoreAt(t *testing.T, r *redistest.Server, node, advertise string) *cluster.Cluster {
	t.Helper()
	rdb, err := cluster.NewClient(r.URL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	c, err := cluster.New(rdb, cluster.Config{Name: "fwd", Node: node, Advertise: advertise})
	require.NoError(t, err)
	return c
}

// Events from any node (issue 17, item 2): the owner publishes a stream's
// events to its log in Redis, and any node serves them to its own
// EventSources from there — without a hop to the owner (node B serves
// them while A's internal listener is not even up). Ids are the log's
// "<offset>.<epoch>"; a reconnect with Last-Event-ID to a third node gets
// exactly the missed events; a bare integer cannot be checked against the
// log's life and gets a reset; the end of the stream ends its EventSources
// on every node; a WebSocket (forwarded to the owner, whose commands it
// runs) carries the same ids.
func TestEvents_AnyNodeServesThemFromTheClusterLog(t *testing.T) {
	t.Parallel()
	r := redistest.ForTest(t)
	secret := []byte(strings.Repeat("e", 32))
	internalA := httptest.NewUnstartedServer(nil)
	storeA := clusterStoreAt(t, r, "a", internalA.Listener.Addr().String())
	storeB, storeC := clusterStoreAt(t, r, "b", "127.0.0.1:1"), clusterStoreAt(t, r, "c", "127.0.0.1:1")
	beat, err := storeA.StartHeartbeat(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = beat.Stop(context.Background()) })
	node := func(store *cluster.Cluster, o envOptions) *testEnv {
		o.clusterEvents = store
		o.api.Forward, o.api.ClusterSecret = store, secret
		return newEnv(t, o)
	}
	a := node(storeA, envOptions{})
	b := node(storeB, envOptions{xmpp: a.xmpp})
	c := node(storeC, envOptions{xmpp: a.xmpp})
	t.Cleanup(internalA.Close)

	alice, bob := a.login(a.newUser("eva")), a.login(a.newUser("evb"))
	eventsPath := "/restapi/v1/chat/" + alice.StreamID + "/events"
	onB := b.subscribe(eventsPath, bearerHeader(alice.Token))
	body := func(i int) string { return fmt.Sprintf("log %d", i) }
	isMsg := func(i int) func(map[string]any) bool {
		return func(m map[string]any) bool { return m["body"] == body(i) }
	}
	for i := 1; i <= 3; i++ {
		a.post(bob, http.MethodPost, "/messages/"+bare(alice.JID), body(i), http.StatusAccepted)
	}
	var ids []string
	for i := 1; i <= 3; i++ {
		ev, _ := onB.next(t, isMsg(i))
		ids = append(ids, ev.ID)
	}
	offset, epoch, ok := strings.Cut(ids[2], ".")
	require.True(t, ok, "cluster ids carry the log's epoch: %q", ids[2])
	require.NotEmpty(t, epoch)
	for _, id := range ids {
		require.True(t, strings.HasSuffix(id, "."+epoch), "one epoch: %v", ids)
	}
	require.NotEqual(t, ids[0], ids[1])
	onB.close()

	// Missed while disconnected, then resumed on a node that never served
	// this stream: exactly the missed events, in order, from Redis.
	for i := 4; i <= 5; i++ {
		a.post(bob, http.MethodPost, "/messages/"+bare(alice.JID), body(i), http.StatusAccepted)
	}
	onC := c.subscribe(eventsPath, http.Header{"Authorization": {"Bearer " + alice.Token}, "Last-Event-ID": {ids[2]}})
	var bodies []string
	ev, m := onC.next(t, nil)
	for m["body"] != body(5) {
		require.NotEqual(t, "reset", m["type"], "a resume inside the window is not a reset")
		if b, ok := m["body"].(string); ok {
			bodies = append(bodies, b)
		}
		ev, m = onC.next(t, nil)
	}
	bodies = append(bodies, m["body"].(string))
	require.Equal(t, []string{body(4), body(5)}, bodies, "nothing before Last-Event-ID %s.%s again, nothing missed", offset, epoch)
	require.True(t, strings.HasSuffix(ev.ID, "."+epoch))

	// A bare integer is no position in this log's life: reset, then what is retained.
	bareResume := b.subscribe(eventsPath, http.Header{"Authorization": {"Bearer " + alice.Token}, "Last-Event-ID": {offset}})
	_, m = bareResume.next(t, nil)
	require.Equal(t, "reset", m["type"], "got %v", m)

	// Someone else's token is refused on a node that does not hold the stream.
	res, errBody := b.do(http.MethodGet, eventsPath, bob.Token, nil, "")
	require.Equal(t, 40401, requireError(t, res, errBody, http.StatusNotFound).Code)

	// A WebSocket opened on B is forwarded to A (its commands act on the
	// XMPP session); its event_id is the log's id.
	internalA.Config.Handler = a.srv.ClusterRoutes(secret)
	internalA.Start()
	ws, _, err := b.dialWS(t, "/restapi/v1/chat/"+alice.StreamID+"/ws", bearerHeader(alice.Token))
	require.NoError(t, err)
	a.post(bob, http.MethodPost, "/messages/"+bare(alice.JID), body(6), http.StatusAccepted)
	got := ws.next(t, func(m map[string]any) bool { return m["body"] == body(6) })
	require.Regexp(t, `^[0-9]+\.`+epoch+`$`, got["event_id"])
	_, m = onC.next(t, isMsg(6))
	require.Equal(t, body(6), m["body"])

	// The stream ends on its owner: the EventSources on B and C end too.
	a.post(alice, http.MethodPost, "/logoff", nil, http.StatusNoContent)
	onC.waitEnd(t, 10*time.Second)
	bareResume.waitEnd(t, 10*time.Second)
	res, errBody = c.do(http.MethodGet, eventsPath, alice.Token, nil, "")
	require.Equal(t, 40401, requireError(t, res, errBody, http.StatusNotFound).Code, "the stream left the registry")
}

// Takeover state (issue 17, item 3): the owner keeps each stream's
// presence and rooms on its registry record, for issue 18's takeover; once
// another node has claimed the stream, the old owner's next write is
// refused by the fence and the stream ends there, leaving the new owner's
// record in place.
func TestTakeoverState_SavedUntilAnotherNodeClaims(t *testing.T) {
	t.Parallel()
	r := redistest.ForTest(t)
	storeA, storeB := clusterStore(t, r, "a"), clusterStore(t, r, "b")
	a := newEnv(t, envOptions{clusterEvents: storeA})
	alice := a.login(a.newUser("heir"))
	room := "heir" + strings.ReplaceAll(alice.user, "-", "")

	a.post(alice, http.MethodPost, "/presence", map[string]any{"show": "away", "status": "at lunch"}, http.StatusNoContent)
	a.post(alice, http.MethodPost, "/rooms", map[string]any{"room": room, "nick": "ali"}, http.StatusCreated)
	var rec cluster.StreamRecord
	require.Eventually(t, func() bool {
		var err error
		rec, err = storeB.Get(t.Context(), alice.StreamID)
		return err == nil && strings.Contains(rec.State[cluster.StateRooms], `"nick":"ali"`)
	}, 5*time.Second, 20*time.Millisecond, "the record gets the rooms")
	var presence gateway.OutgoingPresence
	require.NoError(t, json.Unmarshal([]byte(rec.State[cluster.StatePresence]), &presence))
	require.Equal(t, "away", presence.Show)
	require.Equal(t, "at lunch", presence.Status)
	var rooms []gateway.RoomSeat
	require.NoError(t, json.Unmarshal([]byte(rec.State[cluster.StateRooms]), &rooms))
	require.Len(t, rooms, 1)
	require.Equal(t, "ali", rooms[0].Nick)
	require.True(t, strings.HasPrefix(rooms[0].Room, room+"@"), rooms[0].Room)

	// Node B claims the stream (as a takeover would): A's next change is
	// refused by the fence, and A ends the stream without touching B's record.
	_, err := storeB.Claim(t.Context(), alice.StreamID, "a")
	require.NoError(t, err)
	a.post(alice, http.MethodPost, "/presence", map[string]any{"show": "dnd"}, http.StatusNoContent)
	require.Eventually(t, func() bool {
		_, err := a.mgr.Stream(alice.StreamID)
		return errors.Is(err, gateway.ErrStreamNotFound)
	}, 5*time.Second, 20*time.Millisecond, "node A lets the stream go")
	rec, err = storeB.Get(t.Context(), alice.StreamID)
	require.NoError(t, err, "the record stays: it is node B's now")
	require.Equal(t, "b", rec.Owner)
	require.NoError(t, json.Unmarshal([]byte(rec.State[cluster.StatePresence]), &presence))
	require.Equal(t, "away", presence.Show, "A's refused write changed nothing")
}
