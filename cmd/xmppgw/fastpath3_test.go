package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/xmppgw/xmppgw/api"
	"github.com/xmppgw/xmppgw/fastpath"
)

// The cluster's workgroup queues (issue 17 item 6, issue 18): one engine,
// on the node holding the fastpath lease, reached from every node. An
// admin creates a workgroup through node 3; the agent (bob, stream on node
// 2) goes online through node 3; alice (stream on node 3) asks through
// node 2 and her question is offered to bob, whose EventSource is on node
// 3; carol waits behind her. Then the leader, node 1, is killed: a
// survivor takes the queues over within the lease TTL + 5 s, carol keeps
// her place, the pending offer is made again, and bob accepts it through
// node 4 (asked on one node, offered to an EventSource on another,
// accepted on a third): alice is invited to the room and her ticket is
// chatting.
func TestCluster_WorkgroupQueuesSurviveTheirLeader(t *testing.T) {
	c := takeoverCluster(t, "queues")
	require.NoError(t, c.xmpp.Register(t.Context(), "carol", "carol-password-1"))
	n1 := c.start("n1", nil)
	require.Eventually(t, func() bool { return strings.Contains(n1.logs.String(), "this node runs the workgroup queues") },
		15*time.Second, 50*time.Millisecond, "the first node takes the queues")
	n2, n3, n4 := c.start("n2", nil), c.start("n3", nil), c.start("n4", nil)
	bob := n2.login("bob", "bob-password-1")
	alice := n3.login("alice", "alice-password-1")
	carol := n2.login("carol", "carol-password-1")
	bobEv := n3.events(bob.StreamID, bearer(bob.Token))
	aliceEv := n2.events(alice.StreamID, bearer(alice.Token))

	code, body := n3.do(http.MethodPost, "/restapi/v1/admin/workgroups",
		map[string]any{"name": "help", "members": []string{"bob@" + c.xmpp.Domain}, "max_chats": 1, "offer_timeout": 120}, adminHeader())
	require.Equal(t, http.StatusCreated, code, body)
	for _, n := range []*gatewayNode{n1, n2, n3} {
		code, body := n.do(http.MethodGet, "/restapi/v1/admin/workgroups/help", nil, adminHeader())
		require.Equal(t, http.StatusOK, code, "%s sees the workgroup: %s", n.name, body)
	}
	code, body = n3.do(http.MethodPost, "/restapi/v1/chat/"+bob.StreamID+"/assists/help", nil, bearer(bob.Token))
	require.Equal(t, http.StatusNoContent, code, body)

	ask := func(n *gatewayNode, who api.LoginResponse, question string) fastpath.TicketInfo {
		t.Helper()
		code, body := n.do(http.MethodPost, "/restapi/v1/ask", map[string]any{"workgroup": "help", "question": question, "emailAddress": "asker@mail.example"}, bearer(who.Token))
		require.Equal(t, http.StatusAccepted, code, body)
		var ti fastpath.TicketInfo
		require.NoError(t, json.Unmarshal([]byte(body), &ti))
		return ti
	}
	offered := func(from string) func(map[string]any) bool {
		return func(m map[string]any) bool {
			return m["type"] == "offerReceived" && strings.HasPrefix(m["from"].(string), from+"@")
		}
	}
	first := ask(n2, alice, "first question")
	require.Equal(t, 1, first.Position)
	before := bobEv.next(t, offered("alice"))
	second := ask(n3, carol, "second question")
	require.Equal(t, 2, second.Position)

	n1.stop(false) // kill -9 the queues' leader
	killed := time.Now()
	again := bobEv.next(t, offered("alice"))
	require.Less(t, time.Since(killed), 3*time.Second+5*time.Second, "re-offered within the lease TTL + 5 s")
	require.NotEmpty(t, again.Data["id"])
	require.Contains(t, n2.logs.String()+n3.logs.String(), "this node runs the workgroup queues")

	ticket := func(n *gatewayNode, who api.LoginResponse, id string) fastpath.TicketInfo {
		t.Helper()
		code, body := n.do(http.MethodGet, "/restapi/v1/ask/"+id, nil, bearer(who.Token))
		require.Equal(t, http.StatusOK, code, body)
		var ti fastpath.TicketInfo
		require.NoError(t, json.Unmarshal([]byte(body), &ti))
		return ti
	}
	waiting := ticket(n2, carol, second.Ticket)
	require.Equal(t, fastpath.StateQueued, waiting.State)
	require.Equal(t, 2, waiting.Position, "carol kept her place")

	code, body = n4.do(http.MethodPut, "/restapi/v1/chat/"+bob.StreamID+"/assists/help/"+again.Data["id"].(string), nil, bearer(bob.Token))
	require.Equal(t, http.StatusOK, code, "bob accepts the offer made again: %s", body)
	var accepted api.AcceptResponse
	require.NoError(t, json.Unmarshal([]byte(body), &accepted))
	require.Equal(t, first.Ticket, accepted.Ticket)
	invite := aliceEv.next(t, func(m map[string]any) bool { return m["type"] == "offer" })
	require.Equal(t, accepted.Room, invite.Data["mucRoom"])
	require.Equal(t, fastpath.StateChatting, ticket(n3, alice, first.Ticket).State)
	if id, _ := before.Data["id"].(string); id != again.Data["id"] {
		code, body = n3.do(http.MethodPut, "/restapi/v1/chat/"+bob.StreamID+"/assists/help/"+id, nil, bearer(bob.Token))
		require.Equal(t, http.StatusNotFound, code, "the dead leader's offer is gone: %s", body)
	}
}
