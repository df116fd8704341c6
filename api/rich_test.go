package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/xmppgw/xmppgw/gateway"
)

// pair is two logged-in users watching their own event streams.
type pair struct {
	e                  *testEnv
	alice, bob         session
	aliceEv, bobEv     *sseConn
	aliceBare, bobBare string
}

func newPair(t *testing.T, e *testEnv) *pair {
	p := &pair{e: e, alice: e.login(e.newUser("alice")), bob: e.login(e.newUser("bob"))}
	p.aliceBare, p.bobBare = bare(p.alice.JID), bare(p.bob.JID)
	p.aliceEv = e.subscribe("/restapi/v1/chat/"+p.alice.StreamID+"/events", bearerHeader(p.alice.Token))
	p.bobEv = e.subscribe("/restapi/v1/chat/"+p.bob.StreamID+"/events", bearerHeader(p.bob.Token))
	return p
}

// post sends a JSON (or text) request as s and requires the status.
func (e *testEnv) post(s session, method, path string, body any, want int) string {
	e.t.Helper()
	var res *http.Response
	var out string
	switch b := body.(type) {
	case nil:
		res, out = e.do(method, "/restapi/v1/chat/"+s.StreamID+path, s.Token, nil, "")
	case string:
		res, out = e.do(method, "/restapi/v1/chat/"+s.StreamID+path, s.Token, strings.NewReader(b), "text/plain")
	default:
		res, out = e.do(method, "/restapi/v1/chat/"+s.StreamID+path, s.Token, jsonBody(b), "application/json")
	}
	require.Equal(e.t, want, res.StatusCode, out)
	return out
}

func sentID(t *testing.T, body string) string {
	t.Helper()
	var r MessageResponse
	require.NoError(t, json.Unmarshal([]byte(body), &r))
	require.NotEmpty(t, r.ID)
	return r.ID
}

func TestRich_MessageFeaturesRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	p := newPair(t, e)

	id := sentID(t, e.post(p.alice, http.MethodPost, "/messages/"+p.bobBare, map[string]any{
		"body": "with everything", "id": "msg-1", "markable": true, "destroy_after": 5, "chatstate": "active",
		"data":        map[string]any{"k": []int{1, 2}},
		"extraParams": map[string]any{"save_to_history": 1, "date_sent": 1409146118, "dialog_id": "d-1", "silent": true, "custom": "a&b<c>"},
		"attachments": []map[string]any{
			{"type": "image", "id": "123", "width": 640, "height": 480, "content-type": "image/png", "name": "cat.png"},
			{"type": "location", "data": `{"lat":50.01,"lng":36.22}`},
		},
	}, http.StatusAccepted))
	require.Equal(t, "msg-1", id)
	_, got := p.bobEv.next(t, ofType("chat"))
	require.Equal(t, map[string]any{
		"type": "chat", "id": "msg-1", "origin_id": "msg-1", "from": p.alice.JID, "to": p.bobBare, "body": "with everything",
		"markable": true, "destroy_after": float64(5), "chatstate": "active", "data": map[string]any{"k": []any{float64(1), float64(2)}},
		"extraParams": map[string]any{"save_to_history": "1", "date_sent": "1409146118", "dialog_id": "d-1", "silent": "true", "custom": "a&b<c>"},
		"attachments": []any{
			map[string]any{"type": "image", "id": "123", "width": "640", "height": "480", "content-type": "image/png", "name": "cat.png"},
			map[string]any{"type": "location", "data": `{"lat":50.01,"lng":36.22}`},
		},
	}, withoutKeys(got, "stamp", "stanza_id", "delayed"))

	// Typing indicator.
	e.post(p.alice, http.MethodPost, "/chatstate/composing/"+p.bobBare, nil, http.StatusNoContent)
	_, cs := p.bobEv.next(t, ofType("chatstate"))
	require.Equal(t, map[string]any{"type": "chatstate", "from": p.alice.JID, "to": p.bobBare, "state": "composing"}, cs)
	e.post(p.alice, http.MethodPost, "/chatstate/typing/"+p.bobBare, nil, http.StatusBadRequest)

	// Delivered and read markers back to alice.
	for _, marker := range []string{"received", "displayed"} {
		e.post(p.bob, http.MethodPost, "/messages/"+p.aliceBare+"/msg-1/"+marker,
			map[string]any{"extraParams": map[string]any{"dialog_id": "d-1"}}, http.StatusAccepted)
		_, m := p.aliceEv.next(t, ofType("marker"))
		require.Equal(t, map[string]any{"type": "marker", "marker": marker, "id": "msg-1", "from": p.bob.JID, "to": p.aliceBare,
			"extraParams": map[string]any{"dialog_id": "d-1"}}, m)
	}
	e.post(p.bob, http.MethodPost, "/messages/"+p.aliceBare+"/msg-1/read", nil, http.StatusBadRequest)

	// Edit, then delete.
	e.post(p.alice, http.MethodPut, "/messages/"+p.bobBare+"/msg-1", map[string]any{"body": "corrected"}, http.StatusAccepted)
	_, edit := p.bobEv.next(t, ofType("edit"))
	require.Equal(t, "corrected", edit["body"])
	require.Equal(t, "msg-1", edit["replace_id"])
	e.post(p.alice, http.MethodDelete, "/messages/"+p.bobBare+"/msg-1", map[string]any{"extraParams": map[string]any{"dialog_id": "d-1"}}, http.StatusAccepted)
	_, del := p.bobEv.next(t, ofType("delete"))
	require.Equal(t, map[string]any{"type": "delete", "id": "msg-1", "from": p.alice.JID, "to": p.bobBare,
		"extraParams": map[string]any{"dialog_id": "d-1"}}, del)

	// Bad attachments and extraParams are refused, not mangled.
	e.post(p.alice, http.MethodPost, "/messages/"+p.bobBare, map[string]any{"body": "x", "attachments": []map[string]any{{"colour": "red"}}}, http.StatusBadRequest)
	e.post(p.alice, http.MethodPost, "/messages/"+p.bobBare, map[string]any{"body": "x", "extraParams": map[string]any{"a b": "1"}}, http.StatusBadRequest)
	e.post(p.alice, http.MethodPost, "/messages/"+p.bobBare, map[string]any{"body": "x", "extraParams": map[string]any{"nested": map[string]any{}}}, http.StatusBadRequest)
}

func TestRich_CarbonsReachTheUsersOtherStreams(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	p := newPair(t, e)
	second := e.login(p.alice.user, p.alice.pass)
	tab2 := e.subscribe("/restapi/v1/chat/"+second.StreamID+"/events", bearerHeader(second.Token))
	tab2.next(t, ofType("stream"))
	require.Eventually(t, func() bool { // carbons are enabled right after login
		e.post(p.alice, http.MethodPost, "/messages/"+p.bobBare, "probe", http.StatusAccepted)
		select {
		case ev := <-tab2.events:
			return strings.Contains(ev.Data, `"carbon":"sent"`)
		case <-time.After(200 * time.Millisecond):
			return false
		}
	}, 5*time.Second, 10*time.Millisecond)
	e.post(p.bob, http.MethodPost, "/messages/"+url.PathEscape(p.alice.JID), "to alice's first tab", http.StatusAccepted)
	_, rc := tab2.next(t, func(m map[string]any) bool { return m["carbon"] == "received" })
	require.Equal(t, "to alice's first tab", rc["body"])
	require.Equal(t, p.bob.JID, rc["from"])
}

func TestHistory_PagesForwardAndBackward(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{api: Config{SendsPerSecond: 1000}})
	alice := e.login(e.newUser("alice"))
	bob := e.login(e.newUser("bob"))
	for i := range 120 {
		e.post(alice, http.MethodPost, "/messages/"+bare(bob.JID), fmt.Sprintf("m%03d", i), http.StatusAccepted)
	}
	page := func(q string) (bodies []string, first, last string, complete bool) {
		out := e.post(bob, http.MethodGet, "/messages?with="+url.QueryEscape(bare(alice.JID))+"&"+q, nil, http.StatusOK)
		var hp struct {
			Messages []map[string]any `json:"messages"`
			First    string           `json:"first"`
			Last     string           `json:"last"`
			Complete bool             `json:"complete"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &hp))
		for _, m := range hp.Messages {
			require.Equal(t, "chat", m["type"])
			require.NotEmpty(t, m["stanza_id"])
			require.Equal(t, true, m["delayed"])
			bodies = append(bodies, m["body"].(string))
		}
		return bodies, hp.First, hp.Last, hp.Complete
	}
	want := make([]string, 120)
	for i := range want {
		want[i] = fmt.Sprintf("m%03d", i)
	}
	require.Eventually(t, func() bool { // the archive write may trail the delivery
		b, _, _, _ := page("before=&limit=1")
		return len(b) == 1 && b[0] == "m119"
	}, 10*time.Second, 50*time.Millisecond)

	var forward []string
	q := "limit=50"
	for range 5 {
		b, _, last, complete := page(q)
		forward = append(forward, b...)
		if complete {
			break
		}
		q = "limit=50&after=" + url.QueryEscape(last)
	}
	require.Equal(t, want, forward, "forwards: no duplicates, no gaps")

	var backward []string
	q = "limit=50&before="
	for range 5 {
		b, first, _, complete := page(q)
		backward = append(b, backward...)
		if complete || len(b) < 50 {
			break
		}
		q = "limit=50&before=" + url.QueryEscape(first)
	}
	require.Equal(t, want, backward, "backwards: no duplicates, no gaps")

	e.post(bob, http.MethodGet, "/messages?limit=501", nil, http.StatusBadRequest)
	e.post(bob, http.MethodGet, "/messages?start=yesterday", nil, http.StatusBadRequest)
	e.post(bob, http.MethodGet, "/messages?after=a&before=b", nil, http.StatusBadRequest)
}

func TestHistory_GapFillAfterRestartDeliversExactlyOnce(t *testing.T) {
	t.Parallel()
	xs := xmppForTest(t)
	fast := newEnv(t, envOptions{xmpp: xs})
	slow := newEnv(t, envOptions{xmpp: xs, gateway: gateway.Config{ReconnectMin: 2 * time.Second, ReconnectMax: 3 * time.Second}})
	alice := fast.login(fast.newUser("alice"))
	bobUser, bobPass := slow.newUser("bob")
	bob := slow.login(bobUser, bobPass)
	bobEv := slow.subscribe("/restapi/v1/chat/"+bob.StreamID+"/events", bearerHeader(bob.Token))
	fast.post(alice, http.MethodPost, "/messages/"+bare(bob.JID), "before", http.StatusAccepted)
	bobEv.next(t, func(m map[string]any) bool { return m["body"] == "before" })

	killAndRestart(t, xs)
	require.Eventually(t, func() bool {
		res, _ := fast.do(http.MethodPost, "/restapi/v1/chat/"+alice.StreamID+"/messages/"+bare(bob.JID), alice.Token,
			strings.NewReader("while bob was away"), "text/plain")
		return res.StatusCode == http.StatusAccepted
	}, 20*time.Second, 50*time.Millisecond, "alice reconnects first")
	bobEv.next(t, func(m map[string]any) bool { return m["type"] == "stream" && m["state"] == "online" })
	_, got := bobEv.next(t, func(m map[string]any) bool { return m["body"] == "while bob was away" })
	require.NotEmpty(t, got["stanza_id"])
	// Offline delivery and the archive gap-fill both carry it: exactly once.
	deadline := time.After(2 * time.Second)
	for {
		select {
		case ev := <-bobEv.events:
			require.NotContains(t, ev.Data, "while bob was away", "delivered twice")
		case <-deadline:
			return
		}
	}
}

func TestCommands_LenientPayloadAndReplies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	p := newPair(t, e)
	id := sentID(t, e.post(p.alice, http.MethodPost, "/commands/"+p.bobBare,
		map[string]any{"type": "cmd_search_users", "action": "cmd_search_users", "payload": map[string]any{"userList": []string{"0039"}}}, http.StatusAccepted))
	_, cmd := p.bobEv.next(t, ofType("command"))
	require.Equal(t, map[string]any{"type": "command", "id": id, "from": p.alice.JID, "to": p.bobBare, "command": "cmd_search_users",
		"action": "cmd_search_users", "payload": map[string]any{"userList": []any{"0039"}}}, cmd)

	// The service answers the way the protocol's examples do: unquoted keys,
	// a trailing comma, echoing the request id.
	reply := `<message to="` + p.alice.JID + `" id="` + id + `" type="chat"><x xmlns="jabber:x:oob"><type>cmd_search_users</type>` +
		`<action>cmd_search_users</action><payload>{ status: 0, errorCode: null, userList: ["0039"], }</payload></x><body/></message>`
	e.post(p.bob, http.MethodPost, "/xmpp", reply, http.StatusAccepted)
	_, r := p.aliceEv.next(t, ofType("command"))
	require.Equal(t, id, r["in_reply_to"])
	require.Equal(t, map[string]any{"status": float64(0), "errorCode": nil, "userList": []any{"0039"}}, r["payload"])
	require.Nil(t, r["payload_error"])

	garbage := `<message to="` + p.alice.JID + `" type="chat"><x xmlns="jabber:x:oob"><type>cmd_x</type><payload>{ [ unbalanced</payload></x></message>`
	e.post(p.bob, http.MethodPost, "/xmpp", garbage, http.StatusAccepted)
	_, g := p.aliceEv.next(t, func(m map[string]any) bool { return m["command"] == "cmd_x" })
	require.Equal(t, "{ [ unbalanced", g["payload"])
	require.NotEmpty(t, g["payload_error"])
}

func TestRaw_AcceptedAndRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	p := newPair(t, e)
	e.post(p.alice, http.MethodPost, "/xmpp", `<message to="`+p.bobBare+`" type="chat"><body>raw &amp; ok</body><custom xmlns="urn:example:x" a="1"><inner>v</inner></custom></message>`, http.StatusAccepted)
	_, got := p.bobEv.next(t, ofType("chat"))
	require.Equal(t, "raw & ok", got["body"])
	require.Len(t, got["extensions"], 1, "unknown extensions are kept")
	require.Contains(t, got["extensions"].([]any)[0], `urn:example:x`)

	// A stanza the gateway does not model arrives whole.
	e.post(p.alice, http.MethodPost, "/xmpp", `<message to="`+p.bobBare+`" type="normal"><ping xmlns="urn:example:nothing"/></message>`, http.StatusAccepted)
	_, raw := p.bobEv.next(t, ofType("xmpp"))
	require.Contains(t, raw["stanza"], `urn:example:nothing`)

	// A raw IQ's answer comes back as an event.
	e.post(p.alice, http.MethodPost, "/xmpp", `<iq type="get" id="raw-1" to="`+e.xmpp.Domain+`"><ping xmlns="urn:xmpp:ping"/></iq>`, http.StatusAccepted)
	_, ans := p.aliceEv.next(t, func(m map[string]any) bool {
		return m["type"] == "xmpp" && strings.Contains(m["stanza"].(string), "raw-1")
	})
	require.Contains(t, ans["stanza"], `type="result"`)

	for name, bad := range map[string]string{
		"two stanzas":    `<message to="a@b"/><message to="a@b"/>`,
		"spoofed from":   `<message to="a@b" from="admin@localhost"/>`,
		"not a stanza":   `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>`,
		"foreign ns":     `<message xmlns="jabber:server" to="a@b"/>`,
		"doctype":        `<!DOCTYPE x [<!ENTITY e "x">]><message to="a@b">&e;</message>`,
		"not XML":        `<message to="a@b">`,
		"trailing text":  `<message to="a@b"/>junk`,
		"empty":          ``,
		"stream closing": `</stream:stream>`,
		"nested deeply":  `<message to="a@b">` + strings.Repeat("<x>", 100) + strings.Repeat("</x>", 100) + `</message>`,
	} {
		res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+p.alice.StreamID+"/xmpp", p.alice.Token, strings.NewReader(bad), "text/plain")
		requireError(t, res, body, http.StatusBadRequest)
		_ = name
	}
	// The stream survived all of that.
	e.post(p.alice, http.MethodPost, "/messages/"+p.bobBare, "still here", http.StatusAccepted)
	p.bobEv.next(t, func(m map[string]any) bool { return m["body"] == "still here" })
}

func TestVCard_JSONDescRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	p := newPair(t, e)
	desc := `{"items":[{"address":"ae72","type":"channel","webIsPublished":true,"info":{"name":"Bot <1>"}}]}`
	e.post(p.alice, http.MethodPut, "/vcard", map[string]any{"fn": "Alice A", "nickname": "al", "desc": desc,
		"n": map[string]any{"family": "A", "given": "Alice"}, "email": []string{"a@example.org"}, "org": "ACME"}, http.StatusNoContent)
	out := e.post(p.bob, http.MethodGet, "/vcard/"+url.PathEscape(p.aliceBare), nil, http.StatusOK)
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	require.Equal(t, "Alice A", v["fn"])
	require.Equal(t, desc, v["desc"])
	require.Equal(t, "Bot <1>", v["desc_json"].(map[string]any)["items"].([]any)[0].(map[string]any)["info"].(map[string]any)["name"])
	require.Equal(t, []any{"a@example.org"}, v["email"])
	require.Equal(t, "ACME", v["org"])
	require.Equal(t, map[string]any{"family": "A", "given": "Alice"}, v["n"])
	own := e.post(p.alice, http.MethodGet, "/vcard", nil, http.StatusOK)
	require.Contains(t, own, `"nickname":"al"`)
	e.post(p.alice, http.MethodPut, "/vcard", map[string]any{"fn": "bad\x01"}, http.StatusBadRequest)
}
