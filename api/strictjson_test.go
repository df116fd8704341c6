package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// goTypeWords are what encoding/json's own messages say and ours must not:
// they name Go types, not the JSON the client sent.
var goTypeWords = []string{"Go struct", "Go value", "of type", "MessageRequest", "PresenceRequest", "wsMessageCmd", "unmarshal"}

// strictJSONCase is one body the strict decoder must refuse with 400/40001,
// with words the message must contain.
type strictJSONCase struct {
	name string
	body string
	want []string
}

// messageStrictCases are bodies of a message (the REST POST body, or the
// "message" object of a WebSocket command).
var messageStrictCases = []strictJSONCase{
	{"invalid UTF-8", "{\"body\":\"a\xffb\"}", []string{"UTF-8"}},
	{"invalid UTF-8 in data", "{\"body\":\"a\",\"data\":{\"k\":\"\xc3\x28\"}}", []string{"UTF-8"}},
	{"UTF-8 encoded surrogate", "{\"body\":\"\xed\xa0\x80\"}", []string{"UTF-8"}},
	{"lone high surrogate", `{"body":"\ud800x"}`, []string{"surrogate", `\ud800`}},
	{"lone low surrogate", `{"body":"\udc00"}`, []string{"surrogate", `\udc00`}},
	{"high surrogate before a non-surrogate escape", `{"body":"\ud800\u0041"}`, []string{"surrogate"}},
	{"two high surrogates", `{"body":"\uD83D\uD83D"}`, []string{"surrogate"}},
	{"lone surrogate in data", `{"body":"x","data":{"k":["\udbff"]}}`, []string{"surrogate"}},
	{"duplicate key", `{"body":"a","body":"b"}`, []string{`field "body" given twice`}},
	{"duplicate key spelled with an escape", `{"body":"a","b\u006fdy":"b"}`, []string{`field "body" given twice`}},
	{"duplicate key in data", `{"body":"a","data":{"k":1,"k":2}}`, []string{`field "data.k" given twice`}},
	{"duplicate key in extraParams", `{"body":"a","extraParams":{"x":"1","x":"2"}}`, []string{`field "extraParams.x" given twice`}},
	{"wrong case", `{"Body":"x"}`, []string{`field "Body"`, `"body"`}},
	{"mixed case", `{"bOdY":"x"}`, []string{`field "bOdY"`, `"body"`}},
	{"Unicode case fold", `{"body":"x","ſubject":"s"}`, []string{`field "ſubject"`, `"subject"`}},
	{"unknown field", `{"body":"x","bogus":1}`, []string{`field "bogus": unknown field`}},
	{"wrong type", `{"body":1}`, []string{`field "body"`, "expected a string", "got number"}},
	{"wrong type, integer field", `{"body":"x","destroy_after":"soon"}`, []string{`field "destroy_after"`, "expected an integer"}},
	{"wrong type, boolean field", `{"body":"x","markable":"yes"}`, []string{`field "markable"`, "true or false"}},
	{"not an object", `["body"]`, []string{"expected an object", "got array"}},
}

func requireStrictJSONError(t *testing.T, res *http.Response, body string, want []string) {
	t.Helper()
	er := requireError(t, res, body, http.StatusBadRequest)
	require.Equal(t, errInvalidJSON.code, er.Code, body)
	for _, w := range want {
		require.Contains(t, er.Error, w)
	}
	for _, w := range goTypeWords {
		require.NotContains(t, er.Error, w)
	}
}

// TestServer_StrictJSON_Routes sends what encoding/json alone would bend
// (invalid UTF-8 and lone surrogates become U+FFFD, "Body" fills "body", the
// last duplicate wins) to a message POST and a presence POST: each is a 400
// that names the JSON field and no Go type.
func TestServer_StrictJSON_Routes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{api: Config{SendsPerSecond: 1000}})
	alice := e.login(e.newUser("sj"))
	msgPath := "/restapi/v1/chat/" + alice.StreamID + "/messages/bob@localhost"
	presPath := "/restapi/v1/chat/" + alice.StreamID + "/presence"

	type routeCase struct {
		path string
		strictJSONCase
	}
	var tests []routeCase
	for _, c := range messageStrictCases {
		c.name = "message: " + c.name
		tests = append(tests, routeCase{msgPath, c})
	}
	for _, c := range []strictJSONCase{
		{"invalid UTF-8", "{\"status\":\"\xc3\x28\"}", []string{"UTF-8"}},
		{"lone surrogate", `{"status":"\ude00"}`, []string{"surrogate"}},
		{"duplicate key", `{"show":"away","show":"dnd"}`, []string{`field "show" given twice`}},
		{"wrong case", `{"Show":"away"}`, []string{`field "Show"`, `"show"`}},
		{"wrong type", `{"priority":"high"}`, []string{`field "priority"`, "expected an integer", "got string"}},
	} {
		c.name = "presence: " + c.name
		tests = append(tests, routeCase{presPath, c})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := e.do(http.MethodPost, tt.path, alice.Token, strings.NewReader(tt.body), "application/json")
			requireStrictJSONError(t, res, body, tt.want)
		})
	}

	// What is right still passes: a surrogate pair, an escaped backslash
	// before "u", the exact names.
	for _, ok := range []string{`{"body":"\ud83d\ude00 ok"}`, `{"body":"\\ud800 is text"}`, `{"body":"x","data":{"k":[1,{"k":2}]}}`} {
		res, body := e.do(http.MethodPost, msgPath, alice.Token, strings.NewReader(ok), "application/json")
		require.Equal(t, http.StatusAccepted, res.StatusCode, "%s → %s", ok, body)
	}
	res, body := e.do(http.MethodPost, presPath, alice.Token, strings.NewReader(`{"show":"away","priority":1}`), "application/json")
	require.Equal(t, http.StatusNoContent, res.StatusCode, body)
}

// TestWS_StrictJSON_Commands: WebSocket command frames pass the same strict
// decoder, for the frame itself and for a nested message object.
func TestWS_StrictJSON_Commands(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{api: Config{SendsPerSecond: 1000}})
	alice := e.login(e.newUser("sjw"))
	ws, _, err := e.dialWS(t, "/restapi/v1/chat/"+alice.StreamID+"/ws", bearerHeader(alice.Token))
	require.NoError(t, err)

	tests := []strictJSONCase{
		{"frame: invalid UTF-8", "{\"type\":\"message\",\"id\":\"%s\",\"to\":\"bob@localhost\",\"body\":\"a\xffb\"}", []string{"UTF-8"}},
		{"frame: lone surrogate", `{"type":"message","id":"%s","to":"bob@localhost","body":"\ud800"}`, []string{"surrogate"}},
		{"frame: duplicate key", `{"type":"message","id":"%s","to":"bob@localhost","body":"a","body":"b"}`, []string{`field "body" given twice`}},
		{"frame: duplicate type", `{"type":"ping","id":"%s","type":"message"}`, []string{`field "type" given twice`}},
		{"frame: wrong case", `{"type":"message","id":"%s","To":"bob@localhost","body":"a"}`, []string{`field "To"`, `"to"`}},
		{"frame: wrong type", `{"type":"message","id":"%s","to":7,"body":"a"}`, []string{`field "to"`, "expected a string"}},
	}
	for _, c := range messageStrictCases {
		if c.name == "not an object" {
			continue
		}
		c.name = "message object: " + c.name
		c.body = `{"type":"message","id":"%s","to":"bob@localhost","message":` + c.body + `}`
		want := make([]string, len(c.want)) // a copy: the table is shared
		for i, w := range c.want {
			want[i] = strings.Replace(w, `field "`, `field "message.`, 1)
		}
		c.want = want
		tests = append(tests, c)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "s" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
			ws.send(t, strings.Replace(tt.body, "%s", id, 1))
			m := ws.next(t, replyTo(id))
			require.Equal(t, "error", m["type"], m)
			require.Equal(t, float64(errInvalidJSON.code), m["code"], m)
			msg, _ := m["error"].(string)
			for _, w := range tt.want {
				require.Contains(t, msg, w)
			}
			for _, w := range goTypeWords {
				require.NotContains(t, msg, w)
			}
		})
	}
	ws.send(t, `{"type":"message","id":"ok1","to":"bob@localhost","message":{"body":"\ud83d\ude00"}}`)
	require.Equal(t, "ok", ws.next(t, replyTo("ok1"))["type"])
}
