package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestContacts_AddApproveListRemove(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	p := newPair(t, e)
	e.post(p.alice, http.MethodPost, "/contacts/"+p.bobBare, map[string]any{"name": "Bob", "groups": []string{"Friends"}}, http.StatusNoContent)
	_, push := p.aliceEv.next(t, ofType("roster"))
	require.Equal(t, p.bobBare, push["item"].(map[string]any)["jid"])
	_, sub := p.bobEv.next(t, func(m map[string]any) bool { return m["type"] == "subscription" && m["action"] == "subscribe" })
	require.Equal(t, p.aliceBare, sub["from"])
	e.post(p.bob, http.MethodPost, "/contacts/"+p.aliceBare+"/approve", nil, http.StatusNoContent)
	e.post(p.bob, http.MethodPost, "/contacts/"+p.aliceBare, map[string]any{"name": "Alice"}, http.StatusNoContent)
	p.aliceEv.next(t, func(m map[string]any) bool { return m["type"] == "subscription" && m["action"] == "subscribe" })
	e.post(p.alice, http.MethodPost, "/contacts/"+p.bobBare+"/approve", nil, http.StatusNoContent)

	contacts := func(s session) map[string]map[string]any {
		var list []map[string]any
		require.NoError(t, json.Unmarshal([]byte(e.post(s, http.MethodGet, "/contacts", nil, http.StatusOK)), &list))
		out := map[string]map[string]any{}
		for _, c := range list {
			out[c["jid"].(string)] = c
		}
		return out
	}
	require.Eventually(t, func() bool {
		c := contacts(p.alice)[p.bobBare]
		return c != nil && c["subscription"] == "both" && c["presence"].(map[string]any)["available"] == true
	}, 10*time.Second, 50*time.Millisecond, "both ways subscribed, bob seen online")
	c := contacts(p.alice)[p.bobBare]
	require.Equal(t, "Bob", c["name"])
	require.Equal(t, []any{"Friends"}, c["groups"])

	// Rename without touching the subscription.
	e.post(p.alice, http.MethodPut, "/contacts/"+p.bobBare, map[string]any{"name": "Robert", "groups": []string{"Work", "Friends"}}, http.StatusNoContent)
	require.Eventually(t, func() bool { return contacts(p.alice)[p.bobBare]["name"] == "Robert" }, 5*time.Second, 50*time.Millisecond)
	require.Equal(t, "both", contacts(p.alice)[p.bobBare]["subscription"])

	// bob goes offline: alice's list says so (the ancestor said "available").
	e.post(p.bob, http.MethodPost, "/presence?show=offline", nil, http.StatusNoContent)
	require.Eventually(t, func() bool {
		pr := contacts(p.alice)[p.bobBare]["presence"].(map[string]any)
		return pr["available"] == false && pr["show"] == "offline"
	}, 5*time.Second, 50*time.Millisecond)

	// Removal unsubscribes both ways.
	e.post(p.alice, http.MethodDelete, "/contacts/"+p.bobBare, nil, http.StatusNoContent)
	require.Eventually(t, func() bool {
		_, aliceHas := contacts(p.alice)[p.bobBare]
		bc := contacts(p.bob)[p.aliceBare]
		return !aliceHas && bc != nil && bc["subscription"] == "none"
	}, 10*time.Second, 50*time.Millisecond)
	e.post(p.alice, http.MethodPut, "/contacts/"+p.bobBare, map[string]any{"groups": []string{"a", "a"}}, http.StatusBadRequest)
}

func TestRooms_ThreeUsersLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	p := newPair(t, e)
	carol := e.login(e.newUser("carol"))
	carolEv := e.subscribe("/restapi/v1/chat/"+carol.StreamID+"/events", bearerHeader(carol.Token))
	roomName := "plan" + strings.ReplaceAll(p.alice.user, "-", "")

	out := e.post(p.alice, http.MethodPost, "/rooms", map[string]any{"room": roomName, "nick": "alice",
		"config": map[string]any{"name": "Planning", "persistent": true, "members_only": false, "max_users": 20}}, http.StatusCreated)
	var created CreateRoomResponse
	require.NoError(t, json.Unmarshal([]byte(out), &created))
	room := created.Room
	cfg := e.post(p.alice, http.MethodGet, "/rooms/"+roomName+"/config", nil, http.StatusOK)
	require.Contains(t, cfg, `"name":"Planning"`)
	require.Contains(t, cfg, `"persistent":true`)

	e.post(p.bob, http.MethodPut, "/rooms/"+roomName, map[string]any{"nick": "bob"}, http.StatusNoContent)
	_, joined := p.aliceEv.next(t, func(m map[string]any) bool { return m["type"] == "occupant" && m["nick"] == "bob" })
	require.Equal(t, true, joined["available"])
	require.Equal(t, "participant", joined["role"])

	// Nick conflict: 409 and a room_error event.
	res, body := e.do(http.MethodPut, "/restapi/v1/chat/"+carol.StreamID+"/rooms/"+roomName, carol.Token, jsonBody(map[string]any{"nick": "bob"}), "application/json")
	require.Equal(t, 40900, requireError(t, res, body, http.StatusConflict).Code)
	_, rerr := carolEv.next(t, ofType("room_error"))
	require.Equal(t, "conflict", rerr["condition"])
	e.post(carol, http.MethodPut, "/rooms/"+roomName, map[string]any{"nick": "carol"}, http.StatusNoContent)

	// Post with extraParams; everyone sees it with room and nick.
	e.post(p.bob, http.MethodPost, "/rooms/"+roomName, map[string]any{"body": "hello room", "extraParams": map[string]any{"dialog_id": "r1"}}, http.StatusAccepted)
	_, gc := carolEv.next(t, func(m map[string]any) bool { return m["type"] == "groupchat" && m["body"] == "hello room" })
	require.Equal(t, room, gc["room"])
	require.Equal(t, "bob", gc["nick"])
	require.Equal(t, map[string]any{"dialog_id": "r1"}, gc["extraParams"])

	var occ []map[string]any
	require.NoError(t, json.Unmarshal([]byte(e.post(p.alice, http.MethodGet, "/rooms/"+roomName+"/occupants", nil, http.StatusOK)), &occ))
	nicks := []string{}
	for _, o := range occ {
		nicks = append(nicks, o["nick"].(string))
	}
	require.Equal(t, []string{"alice", "bob", "carol"}, nicks)
	require.Contains(t, e.post(p.bob, http.MethodGet, "/rooms", nil, http.StatusOK), `"room":"`+room+`"`)

	// Nick changes: a taken nick is refused and bob stays in the room as
	// "bob"; a free one renames him and he stays in the room.
	res, body = e.do(http.MethodPut, "/restapi/v1/chat/"+p.bob.StreamID+"/rooms/"+roomName, p.bob.Token, jsonBody(map[string]any{"nick": "carol"}), "application/json")
	requireError(t, res, body, http.StatusConflict)
	e.post(p.bob, http.MethodPost, "/rooms/"+roomName, "still bob", http.StatusAccepted)
	carolEv.next(t, func(m map[string]any) bool { return m["body"] == "still bob" && m["nick"] == "bob" })
	e.post(p.bob, http.MethodPut, "/rooms/"+roomName, map[string]any{"nick": "bobby"}, http.StatusNoContent)
	e.post(p.bob, http.MethodPost, "/rooms/"+roomName, "now bobby", http.StatusAccepted)
	carolEv.next(t, func(m map[string]any) bool { return m["body"] == "now bobby" && m["nick"] == "bobby" })
	e.post(p.bob, http.MethodPut, "/rooms/"+roomName, map[string]any{"nick": "bob"}, http.StatusNoContent)

	e.post(p.alice, http.MethodPut, "/rooms/"+roomName+"/subject", map[string]any{"subject": "Q4 <plans>"}, http.StatusNoContent)
	_, subj := carolEv.next(t, ofType("subject"))
	require.Equal(t, "Q4 <plans>", subj["subject"])

	// Invitations, mediated and direct.
	dave := e.login(e.newUser("dave"))
	daveEv := e.subscribe("/restapi/v1/chat/"+dave.StreamID+"/events", bearerHeader(dave.Token))
	e.post(p.alice, http.MethodPost, "/rooms/"+roomName+"/"+bare(dave.JID), map[string]any{"reason": "join us"}, http.StatusNoContent)
	_, inv := daveEv.next(t, ofType("invitation"))
	require.Equal(t, room, inv["room"])
	require.Equal(t, "join us", inv["reason"])
	require.Equal(t, false, inv["direct"])
	e.post(p.alice, http.MethodPost, "/rooms/"+roomName+"/"+bare(dave.JID)+"?direct=true", nil, http.StatusNoContent)
	_, dinv := daveEv.next(t, ofType("invitation"))
	require.Equal(t, true, dinv["direct"])
	require.Equal(t, room, dinv["room"])

	// Kick carol with a reason, ban bob.
	e.post(p.alice, http.MethodPut, "/rooms/"+roomName+"/roles/carol", map[string]any{"role": "none", "reason": "too loud"}, http.StatusNoContent)
	_, kicked := carolEv.next(t, func(m map[string]any) bool {
		return m["type"] == "occupant" && m["nick"] == "carol" && m["available"] == false
	})
	require.Contains(t, kicked["codes"], float64(307))
	require.Equal(t, "too loud", kicked["reason"])
	e.post(p.alice, http.MethodPut, "/rooms/"+roomName+"/affiliations/"+p.bobBare, map[string]any{"affiliation": "outcast"}, http.StatusNoContent)
	_, banned := p.bobEv.next(t, func(m map[string]any) bool {
		codes, _ := m["codes"].([]any)
		return m["type"] == "occupant" && m["nick"] == "bob" && m["available"] == false && slices.Contains(codes, any(float64(301)))
	})
	require.Contains(t, banned["codes"], float64(301))
	res, body = e.do(http.MethodPut, "/restapi/v1/chat/"+p.bob.StreamID+"/rooms/"+roomName, p.bob.Token, nil, "")
	requireError(t, res, body, http.StatusForbidden)

	// Destroy: the remaining occupants are told.
	e.post(p.alice, http.MethodPost, "/rooms/"+roomName+"/destroy", map[string]any{"reason": "done"}, http.StatusNoContent)
	res, body = e.do(http.MethodGet, "/restapi/v1/chat/"+p.alice.StreamID+"/rooms/"+roomName+"/occupants", p.alice.Token, nil, "")
	requireError(t, res, body, http.StatusNotFound)

	// Bad input never reaches the server glued into a JID.
	e.post(p.alice, http.MethodPut, "/rooms/"+roomName+"?service="+url.QueryEscape("evil@x/y"), nil, http.StatusBadRequest)
	e.post(p.alice, http.MethodPut, "/rooms/a%40b%40c", nil, http.StatusBadRequest)
}

func TestRooms_DirectoryAndInfo(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	alice := e.login(e.newUser("alice"))
	roomName := "pub" + strings.ReplaceAll(alice.user, "-", "")
	e.post(alice, http.MethodPost, "/rooms", map[string]any{"room": roomName, "config": map[string]any{"name": "Public one", "public": true, "persistent": true}}, http.StatusCreated)
	res, body := e.do(http.MethodGet, "/restapi/v1/chat/rooms", alice.Token, nil, "")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	require.Contains(t, body, roomName+"@conference."+e.xmpp.Domain)
	res, body = e.do(http.MethodGet, "/restapi/v1/chat/rooms/"+roomName+"?service=conference", alice.Token, nil, "")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	require.Contains(t, body, `"muc_persistent"`)
	require.Contains(t, body, `"name":"Public one"`)
	res, body = e.do(http.MethodGet, "/restapi/v1/chat/rooms/nosuchroom404", alice.Token, nil, "")
	requireError(t, res, body, http.StatusNotFound)
}

func TestRooms_RejoinedAfterServerRestart(t *testing.T) {
	t.Parallel()
	xs := xmppForTest(t)
	e := newEnv(t, envOptions{xmpp: xs})
	alice := e.login(e.newUser("alice"))
	bob := e.login(e.newUser("bob"))
	bobEv := e.subscribe("/restapi/v1/chat/"+bob.StreamID+"/events", bearerHeader(bob.Token))
	roomName := "stay" + strings.ReplaceAll(alice.user, "-", "")
	e.post(alice, http.MethodPost, "/rooms", map[string]any{"room": roomName, "config": map[string]any{"persistent": true}}, http.StatusCreated)
	e.post(bob, http.MethodPut, "/rooms/"+roomName, nil, http.StatusNoContent)
	killAndRestart(t, xs)
	bobEv.next(t, func(m map[string]any) bool { return m["type"] == "stream" && m["state"] == "online" })
	require.Eventually(t, func() bool {
		res, _ := e.do(http.MethodPost, "/restapi/v1/chat/"+alice.StreamID+"/rooms/"+roomName, alice.Token, strings.NewReader("after restart"), "text/plain")
		return res.StatusCode == http.StatusAccepted
	}, 20*time.Second, 100*time.Millisecond)
	_, m := bobEv.next(t, func(m map[string]any) bool { return m["type"] == "groupchat" && m["body"] == "after restart" })
	require.Equal(t, alice.user, m["nick"])
}
