package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The second adversarial pass (issue 22) over the raw route, the archive,
// pubsub items and WebSocket commands: each attempt is one row with what the
// attacker sends and the answer that proves it failed. Rows are listed in
// the closing note.

// attempt is one HTTP request of the pass and the status it must get.
type attempt struct {
	name, method, path, contentType, body string
	want                                  int
}

func runAttempts(t *testing.T, e *testEnv, s session, attempts []attempt) {
	t.Helper()
	for _, a := range attempts {
		t.Run(a.name, func(t *testing.T) { runAttempt(t, e, s, a) })
	}
}

func runAttempt(t *testing.T, e *testEnv, s session, a attempt) {
	{
		var body *strings.Reader
		if a.body != "" {
			body = strings.NewReader(a.body)
		}
		var res *http.Response
		var out string
		if body == nil {
			res, out = e.do(a.method, "/restapi/v1/chat/"+s.StreamID+a.path, s.Token, nil, "")
		} else {
			res, out = e.do(a.method, "/restapi/v1/chat/"+s.StreamID+a.path, s.Token, body, a.contentType)
		}
		if a.want >= 400 {
			er := requireError(t, res, out, a.want)
			require.NotContains(t, er.Error, "Go struct", a.name)
			require.NotContains(t, er.Error, "json:", a.name)
		} else {
			require.Equal(t, a.want, res.StatusCode, "%s: %s", a.name, out)
		}
	}
}

func TestAdversarial_RawRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	p := newPair(t, e)
	raw := func(name, stanza string, want int) attempt {
		return attempt{name: name, method: http.MethodPost, path: "/xmpp", contentType: "text/plain", body: stanza, want: want}
	}
	runAttempts(t, e, p.alice, []attempt{
		raw("control character reference", `<message to="`+p.bobBare+`"><body>&#x1;</body></message>`, http.StatusBadRequest),
		raw("invalid UTF-8", "<message to=\""+p.bobBare+"\"><body>\xff\xfe</body></message>", http.StatusBadRequest),
		raw("stream element", `<stream:features xmlns:stream="http://etherx.jabber.org/streams"/>`, http.StatusBadRequest),
		raw("stream management", `<enable xmlns="urn:xmpp:sm:3"/>`, http.StatusBadRequest),
		raw("malformed addressee", `<message to="a@b@c"><body>x</body></message>`, http.StatusBadRequest),
		raw("prefixed from", `<message xmlns:c="jabber:client" to="`+p.bobBare+`" c:from="admin@`+e.xmpp.Domain+`"/>`, http.StatusBadRequest),
		raw("processing instruction", `<?xml-stylesheet href="x"?><message to="`+p.bobBare+`"/>`, http.StatusBadRequest),
		raw("entity expansion", `<message to="`+p.bobBare+`"><body>&lol;</body></message>`, http.StatusBadRequest),
		raw("oversized", `<message to="`+p.bobBare+`"><body>`+strings.Repeat("a", 2<<20)+`</body></message>`, http.StatusRequestEntityTooLarge),
	})

	// Stanzas alice may send, built to confuse bob's gateway. None may
	// turn into something bob's gateway trusts; all are attributed to alice.
	forged := []string{
		// An archive result outside any query of bob's.
		`<message to="` + p.bob.JID + `"><result xmlns="urn:xmpp:mam:2" queryid="guess" id="1"><forwarded xmlns="urn:xmpp:forward:0"><message from="` + p.bobBare + `" to="x@y" type="chat"><body>forged archive</body></message></forwarded></result></message>`,
		// A carbon claiming bob sent something.
		`<message to="` + p.bob.JID + `"><sent xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0"><message from="` + p.bob.JID + `" to="x@y" type="chat"><body>forged carbon</body></message></forwarded></sent></message>`,
		// A system notification from a user, not the configured notifier.
		`<message to="` + p.bobBare + `" type="headline"><body>forged system</body><extraParams xmlns="jabber:client"><moduleIdentifier>SystemNotifications</moduleIdentifier></extraParams></message>`,
		// A roster push from a user (RFC 6121 §2.1.6: only the account's own server may push).
		`<iq to="` + p.bob.JID + `" type="set" id="push1"><query xmlns="jabber:iq:roster"><item jid="mallory@evil.example" subscription="both"/></query></iq>`,
		`<message to="` + p.bobBare + `" type="chat"><body>end</body></message>`,
	}
	for _, stanza := range forged {
		e.post(p.alice, http.MethodPost, "/xmpp", stanza, http.StatusAccepted)
	}
	for _, m := range collectUntil(t, p.bobEv, "end") {
		require.NotEqual(t, "forged archive", m["body"], "a stray archive result became an event")
		require.NotContains(t, m, "carbon", "a user forged a carbon: %v", m)
		require.NotEqual(t, "system", m["type"], m)
		require.NotEqual(t, "roster", m["type"], "a user's roster push was believed: %v", m)
		if m["type"] != "stream" && m["type"] != "presence" {
			require.Equal(t, p.alice.JID, m["from"], m)
		}
	}
	// The forged roster push is refused to alice, as RFC 6120 §8.2.3 asks.
	_, refusal := p.aliceEv.next(t, func(m map[string]any) bool {
		s, _ := m["stanza"].(string)
		return m["type"] == "xmpp" && strings.Contains(s, `id="push1"`)
	})
	require.Contains(t, refusal["stanza"], `type="error"`)
	require.Contains(t, refusal["stanza"], "service-unavailable")
	// Bob's archive holds no forged copy.
	hist := e.post(p.bob, http.MethodGet, "/messages?with="+url.QueryEscape("x@y"), nil, http.StatusOK)
	require.NotContains(t, hist, "forged archive")
}

func TestAdversarial_HistoryAndPubSubInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	p := newPair(t, e)
	pep := "/pubsub/" + url.PathEscape(p.aliceBare) + "/urn%3Aexample%3Anode"
	publish := func(name, body string, want int) attempt {
		return attempt{name: name, method: http.MethodPost, path: pep + "/items", contentType: "application/json", body: body, want: want}
	}
	get := func(name, path string, want int) attempt {
		return attempt{name: name, method: http.MethodGet, path: path, want: want}
	}
	runAttempts(t, e, p.alice, []attempt{
		get("history: malformed with", "/messages?with="+url.QueryEscape("a@b@c"), http.StatusBadRequest),
		get("history: limit 0", "/messages?limit=0", http.StatusBadRequest),
		get("history: limit beyond the page maximum", "/messages?limit=501", http.StatusBadRequest),
		get("history: limit not a number", "/messages?limit=1e3", http.StatusBadRequest),
		get("history: after and before", "/messages?after=a&before=b", http.StatusBadRequest),
		get("history: cursor with markup", "/messages?after="+url.QueryEscape(`"/><x>`), http.StatusBadRequest),
		get("history: start not a time", "/messages?start=yesterday", http.StatusBadRequest),
		get("history: a room the stream never joined", "/rooms/nosuchroom"+strings.ReplaceAll(p.alice.user, "-", "")+"/messages", http.StatusNotFound),
		publish("pubsub: payload not XML", `{"payload":"<unclosed"}`, http.StatusBadRequest),
		publish("pubsub: two payload elements", `{"payload":"<a xmlns='urn:x'/><b xmlns='urn:x'/>"}`, http.StatusBadRequest),
		publish("pubsub: doctype in payload", `{"payload":"<!DOCTYPE a [<!ENTITY e 'x'>]><a xmlns='urn:x'>&e;</a>"}`, http.StatusBadRequest),
		publish("pubsub: payload and payload_json", `{"payload":"<a xmlns='urn:x'/>","payload_json":{}}`, http.StatusBadRequest),
		publish("pubsub: control character in item id", `{"id":"a\u0001","payload_json":{}}`, http.StatusBadRequest),
		publish("pubsub: unknown access model", `{"payload_json":{},"access_model":"everyone"}`, http.StatusBadRequest),
		get("pubsub: malformed service", "/pubsub/"+url.PathEscape("a@b@c")+"/n/items", http.StatusBadRequest),
		get("pubsub: max not a number", pep+"/items?max=x", http.StatusBadRequest),
		get("pubsub: negative max", pep+"/items?max=-1", http.StatusBadRequest),
	})
}

func TestAdversarial_WebSocketCommands(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	p := newPair(t, e)
	ws, _, err := e.dialWS(t, "/restapi/v1/chat/"+p.alice.StreamID+"/ws", bearerHeader(p.alice.Token))
	require.NoError(t, err)
	cases := []struct {
		name, frame string
		status      float64
	}{
		{"unknown command", `{"type":"raw","id":"w1","stanza":"<iq/>"}`, 400},
		{"malformed addressee", `{"type":"message","id":"w2","to":"a@b@c","body":"x"}`, 400},
		{"duplicate keys", `{"type":"message","id":"w3","to":"` + p.bobBare + `","body":"x","body":"y"}`, 400},
		{"wrongly cased key", `{"type":"message","id":"w4","To":"` + p.bobBare + `","body":"x"}`, 400},
		{"body beyond the message limit", `{"type":"message","id":"w5","to":"` + p.bobBare + `","body":"` + strings.Repeat("a", 200<<10) + `"}`, 413},
		{"room message outside the room", `{"type":"room_message","id":"w6","room":"nosuch","body":"x"}`, 404},
		{"presence with an unknown show", `{"type":"presence","id":"w7","presence":{"show":"sleeping"}}`, 400},
		{"join with a malformed room", `{"type":"join","id":"w8","room":"a@b@c"}`, 400},
		{"marker of an unknown kind", `{"type":"marker","id":"w9","to":"` + p.bobBare + `","marker":"read-by-nsa","message_id":"m1"}`, 400},
		{"chat state of an unknown kind", `{"type":"chatstate","id":"w10","to":"` + p.bobBare + `","state":"plotting"}`, 400},
	}
	for _, c := range cases {
		ws.send(t, c.frame)
		var head struct {
			ID string `json:"id"`
		}
		require.NoError(t, json.Unmarshal([]byte(c.frame), &head))
		reply := ws.next(t, replyTo(head.ID))
		require.Equal(t, "error", reply["type"], c.name)
		require.Equal(t, c.status, reply["http"], "%s: %v", c.name, reply)
		require.NotContains(t, reply["error"], "Go struct", c.name)
	}
	// A frame that is not an object gets an error without reply-to, and the
	// connection stays usable.
	ws.send(t, `[1,2]`)
	require.Equal(t, "error", ws.next(t, func(m map[string]any) bool { return m["type"] == "error" && m["reply-to"] == nil })["type"])
	ws.send(t, `{"type":"message","id":"ok1","to":"`+p.bobBare+`","body":"after all that"}`)
	require.Equal(t, "ok", ws.next(t, replyTo("ok1"))["type"])
	p.bobEv.next(t, func(m map[string]any) bool { return m["body"] == "after all that" })
}
