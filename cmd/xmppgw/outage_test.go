package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/xmppo/go-xmpp"

	"github.com/xmppgw/xmppgw/api"
	"github.com/xmppgw/xmppgw/internal/redistest"
)

// Issue 18's Redis outage: Redis is stopped (killed; its append-only file
// keeps what it acknowledged) for 10 s in the middle of ~50 msg/s of
// direct XMPP traffic to alice, whose stream is on node 1, read over SSE
// on node 1 and on node 2. While Redis is down, node 1 keeps delivering to
// its own EventSource and answers its own stream's calls; node 3's call for
// that stream gets 503 with Retry-After; the nodes report not ready; no
// XMPP session drops. When Redis is back, node 2's EventSource catches up;
// both end with every message exactly once, in order, without a reset; no
// stream moved; and every node's goroutine count is back where it was.
func TestCluster_RedisOutageKeepsLocalDeliveryAndRecovers(t *testing.T) {
	c := takeoverCluster(t, "outage", redistest.Options{Persist: true})
	nodes := []*gatewayNode{c.start("n1", nil), c.start("n2", nil), c.start("n3", nil)}
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	alice := n1.login("alice", "alice-password-1")
	onN1 := n1.events(alice.StreamID, bearer(alice.Token))
	onN2 := n2.events(alice.StreamID, bearer(alice.Token))
	before := map[string]int{}
	for _, n := range nodes {
		before[n.name] = n.goroutines()
	}

	bob := directClient(t, c, "bob", "bob-password-1")
	const total = 750 // 15 s at 50/s: before, during and after the outage
	sendErr := sendChats(bob, "alice@"+c.xmpp.Domain, "", total, 20*time.Millisecond)
	var fromN1, fromN2 chatLog
	fromN1.take(t, onN1, 100)
	fromN2.take(t, onN2, 100)

	require.NoError(t, c.redis.Kill())
	down := time.Now()
	fromN1.take(t, onN1, 200)
	require.Less(t, time.Since(down), 8*time.Second, "node 1 delivered to its own EventSource while Redis was down")
	require.GreaterOrEqual(t, n1.metric("xmppgw_cluster_events_provisional_total"), 100)

	toBob := "/restapi/v1/chat/" + alice.StreamID + "/messages/bob@" + c.xmpp.Domain
	code, body := n1.do(http.MethodPost, toBob, map[string]string{"body": "local during the outage"}, bearer(alice.Token))
	require.Equal(t, http.StatusAccepted, code, "node 1 serves the stream it owns: %s", body)
	code, header, body := n3.doHeader(http.MethodPost, toBob, map[string]string{"body": "through node 3"}, bearer(alice.Token))
	require.Equal(t, http.StatusServiceUnavailable, code, "a cross-node call while Redis is down: %s", body)
	require.Equal(t, 50305, errorCode(t, body))
	require.NotEmpty(t, header.Get("Retry-After"))
	for _, n := range nodes {
		code, _ := n.do(http.MethodGet, "/readyz", nil, nil)
		require.Equal(t, http.StatusServiceUnavailable, code, "%s is not ready while Redis is down", n.name)
	}
	require.Less(t, time.Since(down), 10*time.Second, "the checks ran during the outage")
	time.Sleep(time.Until(down.Add(10 * time.Second)))
	require.NoError(t, c.redis.Restart(t.Context()))

	fromN1.take(t, onN1, total)
	fromN2.take(t, onN2, total)
	require.NoError(t, <-sendErr)
	fromN1.requireAll(t, total, "node 1")
	fromN2.requireAll(t, total, "node 2, which saw nothing during the outage")

	for _, n := range nodes {
		require.Eventually(t, func() bool {
			code, _ := n.do(http.MethodGet, "/readyz", nil, nil)
			return code == http.StatusOK
		}, 10*time.Second, 100*time.Millisecond, "%s ready again", n.name)
	}
	code, body = n3.do(http.MethodPost, toBob, map[string]string{"body": "through node 3 again"}, bearer(alice.Token))
	require.Equal(t, http.StatusAccepted, code, "cross-node calls work again: %s", body)
	code, body = n2.do(http.MethodGet, "/restapi/v1/admin/streams", nil, adminHeader())
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"node":"`+n1.nodeName()+`"`, "the stream stayed on node 1: %s", body)
	require.NotContains(t, n2.logs.String()+n3.logs.String(), "stream taken over", "no node took node 1's streams after Redis came back")
	for _, n := range nodes {
		// A few goroutines of slack: an HTTP keep-alive connection or a
		// pub/sub reconnect may be mid-flight.
		require.Eventually(t, func() bool { return n.goroutines() <= before[n.name]+5 }, 15*time.Second, 200*time.Millisecond,
			"%s leaks goroutines: %d before the outage, %d after", n.name, before[n.name], n.goroutines())
	}
}

// chatLog is the chat bodies an EventSource delivered, checked as they come.
type chatLog struct{ bodies []string }

// take reads s until the log holds n chat messages; a message twice, a
// reset, or a stream event other than the first "online" (resumed, lost)
// fails the test.
func (l *chatLog) take(t *testing.T, s *eventStream, n int) {
	t.Helper()
	seen := map[string]bool{}
	for _, b := range l.bodies {
		seen[b] = true
	}
	for len(l.bodies) < n {
		ev := s.next(t, func(m map[string]any) bool {
			return m["type"] == "chat" || m["type"] == "reset" || (m["type"] == "stream" && m["state"] != "online")
		})
		require.Equal(t, "chat", ev.Data["type"], "only chat messages expected, got %v", ev.Data)
		body, _ := ev.Data["body"].(string)
		require.False(t, seen[body], "%s delivered twice", body)
		seen[body] = true
		l.bodies = append(l.bodies, body)
	}
}

// requireAll checks that the log is n1..n<total>, in order.
func (l *chatLog) requireAll(t *testing.T, total int, who string) {
	t.Helper()
	want := make([]string, total)
	for i := range want {
		want[i] = "n" + strconv.Itoa(i+1)
	}
	require.Equal(t, want, l.bodies, "%s: every message once, in order", who)
}

func adminHeader() http.Header {
	return http.Header{"Authorization": {"Basic b3BzOmNvcnJlY3QtaG9yc2UtYmF0dGVyeQ=="}} // ops:correct-horse-battery
}

// goroutines is the node's go_goroutines gauge from /metrics.
func (n *gatewayNode) goroutines() int { return n.metric("go_goroutines") }

// metric is the value of an unlabelled gauge or counter from the node's
// /metrics.
func (n *gatewayNode) metric(name string) int {
	n.t.Helper()
	code, body := n.do(http.MethodGet, "/metrics", nil, adminHeader())
	require.Equal(n.t, http.StatusOK, code, body)
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			g, err := strconv.ParseFloat(v, 64)
			require.NoError(n.t, err)
			return int(g)
		}
	}
	n.t.Fatalf("no %s in %s's /metrics", name, n.name)
	return 0
}

// A takeover re-joins the stream's rooms, but a room replays only a little
// history (Prosody: 20 messages): 30 room messages sent while no node held
// the stream reach the EventSource after the takeover all the same, once
// each and in order, from the room's archive (issue 18: gap-fill of rooms
// from MAM).
func TestCluster_TakeoverGapFillsRoomsFromTheirArchive(t *testing.T) {
	c := takeoverCluster(t, "roomgap")
	n1, n2 := c.start("n1", nil), c.start("n2", nil)
	alice := n1.login("alice", "alice-password-1")
	code, body := n1.do(http.MethodPost, "/restapi/v1/chat/"+alice.StreamID+"/rooms",
		map[string]any{"room": "roomgap", "nick": "ali", "config": map[string]any{"persistent": true}}, bearer(alice.Token))
	require.Equal(t, http.StatusCreated, code, body)
	var created api.CreateRoomResponse
	require.NoError(t, json.Unmarshal([]byte(body), &created))
	onN2 := n2.events(alice.StreamID, bearer(alice.Token))
	bob := directClient(t, c, "bob", "bob-password-1")
	_, err := bob.JoinMUCNoHistory(created.Room, "bobby")
	require.NoError(t, err)
	_, err = bob.Send(xmpp.Chat{Remote: created.Room, Type: "groupchat", Text: "r0"})
	require.NoError(t, err)
	roomMsg := func(m map[string]any) bool {
		return m["type"] == "groupchat" || (m["type"] == "stream" && m["state"] == "resumed")
	}
	require.Equal(t, "r0", onN2.next(t, roomMsg).Data["body"])

	n1.stop(false) // kill -9: nobody holds alice's stream until the takeover
	const gap = 30
	for i := 1; i <= gap; i++ {
		_, err := bob.Send(xmpp.Chat{Remote: created.Room, Type: "groupchat", Text: "r" + strconv.Itoa(i)})
		require.NoError(t, err)
	}
	var got []string
	resumed := false
	for len(got) < gap {
		ev := onN2.next(t, roomMsg)
		if ev.Data["type"] == "stream" {
			resumed = true
			continue
		}
		got = append(got, ev.Data["body"].(string))
	}
	require.True(t, resumed || onN2.nextWithin(5*time.Second, func(m map[string]any) bool { return m["state"] == "resumed" }) != nil)
	want := make([]string, gap)
	for i := range want {
		want[i] = "r" + strconv.Itoa(i+1)
	}
	require.Equal(t, want, got, "every room message of the gap, once, in order")
	extra := onN2.nextWithin(2*time.Second, func(m map[string]any) bool { return m["type"] == "groupchat" })
	require.Nil(t, extra, "a room message came twice: %v", extra)
}
