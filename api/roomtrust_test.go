package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// collectUntil gathers every event up to and including the first one whose
// body is sentinel.
func collectUntil(t *testing.T, c *sseConn, sentinel string) []map[string]any {
	t.Helper()
	var seen []map[string]any
	c.next(t, func(m map[string]any) bool {
		seen = append(seen, m)
		return m["body"] == sentinel
	})
	return seen
}

// A plain user can put room markup on any message; the receiver's gateway
// must not turn it into room events, or a forged "invitation" names any
// inviter and a forged "groupchat" any room and nick.
func TestRooms_PlainUsersCannotForgeRoomEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	p := newPair(t, e)
	forged := []string{
		// To the full JID: a server refuses groupchat to a bare JID (RFC 6121
		// §8.5.2.1.1) but delivers it to a resource.
		`<message to="` + p.bob.JID + `" type="groupchat"><body>forged groupchat</body></message>`,
		`<message to="` + p.bob.JID + `" type="groupchat"><subject>forged subject</subject></message>`,
		`<message to="` + p.bobBare + `"><body>forged invite</body><x xmlns="http://jabber.org/protocol/muc#user"><invite from="admin@` + e.xmpp.Domain + `"><reason>trust me</reason></invite></x></message>`,
		`<message to="` + p.bobBare + `"><x xmlns="http://jabber.org/protocol/muc#user"><invite from="admin@` + e.xmpp.Domain + `"/></x></message>`,
		`<message to="` + p.bobBare + `"><body>bad direct</body><x xmlns="jabber:x:conference" jid="not a jid@@"/></message>`,
		`<message to="` + p.bobBare + `" type="chat"><body>backdated</body><delay xmlns="urn:xmpp:delay" from="` + p.aliceBare + `" stamp="2001-02-03T04:05:06Z"/></message>`,
		`<message to="` + p.bobBare + `" type="chat"><body>end</body></message>`,
	}
	for _, stanza := range forged {
		e.post(p.alice, http.MethodPost, "/xmpp", stanza, http.StatusAccepted)
	}
	seen := collectUntil(t, p.bobEv, "end")
	byBody := map[string]map[string]any{}
	for _, m := range seen {
		require.NotContains(t, []string{"invitation", "subject", "groupchat"}, m["type"], "a plain user's message became a room event: %v", m)
		require.NotContains(t, m, "room", m)
		if b, ok := m["body"].(string); ok && b != "" {
			byBody[b] = m
		}
		if m["subject"] == "forged subject" {
			byBody["forged subject"] = m
		}
	}
	for _, body := range []string{"forged groupchat", "forged subject", "forged invite", "bad direct", "backdated"} {
		m, ok := byBody[body]
		require.True(t, ok, "%q was lost instead of delivered as a plain message; saw %v", body, seen)
		require.Equal(t, p.alice.JID, m["from"], body)
	}
	require.Equal(t, "normal", byBody["forged groupchat"]["type"])
	require.Equal(t, "normal", byBody["forged subject"]["type"])
	// The invitation markup stays visible as what it is, an extension.
	ext, _ := json.Marshal(byBody["forged invite"]["extensions"])
	require.Contains(t, string(ext), `invite xmlns=\"http://jabber.org/protocol/muc#user\" from=\"admin@`+e.xmpp.Domain+`\"`)
	var raw map[string]any
	for _, m := range seen {
		if m["type"] == "xmpp" && strings.Contains(m["stanza"].(string), "muc#user") {
			raw = m
		}
	}
	require.NotNil(t, raw, "the body-less forged invitation arrives as an xmpp event")
	// A stamp the sender wrote is a claim: the message is dated on receipt.
	back := byBody["backdated"]
	require.Equal(t, "2001-02-03T04:05:06Z", back["claimed_stamp"])
	require.NotContains(t, back, "delayed")
	stamp, err := time.Parse(time.RFC3339Nano, back["stamp"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), stamp, time.Minute)
}

// The real room's invitation and history keep their meaning: a mediated
// invitation from the room names the inviter the room vouches for, and
// the room's history is dated by the room.
func TestRooms_RealRoomInvitationsAndHistoryAreTrusted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	p := newPair(t, e)
	roomName := "trust" + strings.ReplaceAll(p.alice.user, "-", "")
	out := e.post(p.alice, http.MethodPost, "/rooms", map[string]any{"room": roomName, "nick": "alice"}, http.StatusCreated)
	var created CreateRoomResponse
	require.NoError(t, json.Unmarshal([]byte(out), &created))
	e.post(p.alice, http.MethodPost, "/rooms/"+roomName, "said before bob came", http.StatusAccepted)
	p.aliceEv.next(t, func(m map[string]any) bool { return m["type"] == "groupchat" && m["body"] == "said before bob came" })

	e.post(p.alice, http.MethodPost, "/rooms/"+roomName+"/"+p.bobBare, map[string]any{"reason": "come in"}, http.StatusNoContent)
	_, inv := p.bobEv.next(t, ofType("invitation"))
	require.Equal(t, created.Room, inv["room"])
	require.Equal(t, created.Room, inv["from"])
	// In a semi-anonymous room Prosody names the inviter by occupant JID;
	// ejabberd by real JID, as XEP-0045 §7.8.2's example does.
	if e.onEjabberd() {
		require.Equal(t, p.alice.JID, inv["inviter"])
	} else {
		require.Equal(t, created.Room+"/alice", inv["inviter"])
	}
	require.Equal(t, "come in", inv["reason"])

	e.post(p.bob, http.MethodPut, "/rooms/"+roomName, map[string]any{"nick": "bob"}, http.StatusNoContent)
	_, hist := p.bobEv.next(t, func(m map[string]any) bool { return m["body"] == "said before bob came" })
	require.Equal(t, "groupchat", hist["type"])
	require.Equal(t, created.Room, hist["room"])
	require.Equal(t, true, hist["delayed"], "the room's own history stamp is trusted")
	require.NotContains(t, hist, "claimed_stamp")
}

// Room actions the room refuses answer with its refusal, not 204 and a
// room_error later.
func TestRooms_RefusedActionsAnswerWithTheRoomsError(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	p := newPair(t, e)
	carol := e.login(e.newUser("carol"))
	roomName := "refuse" + strings.ReplaceAll(p.alice.user, "-", "")
	// Only moderators may change the subject: Prosody's default, not
	// ejabberd's (allow_change_subj: true), so it is configured.
	e.post(p.alice, http.MethodPost, "/rooms", map[string]any{"room": roomName, "nick": "alice",
		"config": map[string]any{"change_subject": false}}, http.StatusCreated)
	e.post(p.bob, http.MethodPut, "/rooms/"+roomName, map[string]any{"nick": "bob"}, http.StatusNoContent)

	// A participant changing the subject: the room says forbidden.
	res, body := e.do(http.MethodPut, "/restapi/v1/chat/"+p.bob.StreamID+"/rooms/"+roomName+"/subject", p.bob.Token, jsonBody(map[string]any{"subject": "mine now"}), "application/json")
	er := requireError(t, res, body, http.StatusForbidden)
	require.Contains(t, er.Error, "forbidden")
	// Not in the room at all.
	res, body = e.do(http.MethodPut, "/restapi/v1/chat/"+carol.StreamID+"/rooms/"+roomName+"/subject", carol.Token, jsonBody(map[string]any{"subject": "drive-by"}), "application/json")
	requireError(t, res, body, http.StatusNotFound)
	// A member who is not the owner cannot hand out affiliations.
	res, body = e.do(http.MethodPut, "/restapi/v1/chat/"+p.bob.StreamID+"/rooms/"+roomName+"/affiliations/"+bare(carol.JID), p.bob.Token, jsonBody(map[string]any{"affiliation": "admin"}), "application/json")
	requireError(t, res, body, http.StatusForbidden)

	// A refusal the caller heard is not also sent as a room_error event.
	e.post(p.bob, http.MethodPost, "/rooms/"+roomName, "after", http.StatusAccepted)
	for _, m := range collectUntil(t, p.bobEv, "after") {
		require.NotContains(t, []string{"room_error", "error"}, m["type"], m)
	}

	// The owner's change is answered once the room has broadcast it.
	e.post(p.alice, http.MethodPut, "/rooms/"+roomName+"/subject", map[string]any{"subject": "agreed"}, http.StatusNoContent)
	_, subj := p.bobEv.next(t, ofType("subject"))
	require.Equal(t, "agreed", subj["subject"])
	require.Equal(t, "alice", subj["nick"])
}
