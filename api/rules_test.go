package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// outcome is what a client sees of one stream action: success, or the
// status and stable code of the error.
type outcome struct {
	OK   bool
	HTTP int
	Code int
}

// restOutcome reads a REST answer as an outcome.
func restOutcome(t *testing.T, res *http.Response, body string) outcome {
	t.Helper()
	if res.StatusCode < 300 {
		return outcome{OK: true}
	}
	var er ErrorResponse
	require.NoError(t, json.Unmarshal([]byte(body), &er), body)
	return outcome{HTTP: res.StatusCode, Code: er.Code}
}

// The rules that guard a stream action (send rate, message size, address
// validation) are one rule set: the same actions get the same outcomes
// over REST and over the WebSocket's commands (real Prosody, one fresh
// stream per transport so each has its own send budget).
func TestStreamRules_SameOverRESTAndWebSocket(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{api: Config{SendsPerSecond: 1, MaxMessageBytes: 16}})
	bobUser, _ := e.newUser("rulesbob")
	bob := bobUser + "@" + e.mgr.Domain()
	type action struct {
		rest func(s session) (*http.Response, string)
		ws   map[string]any
	}
	presence := action{
		rest: func(s session) (*http.Response, string) {
			return e.do(http.MethodPost, "/restapi/v1/chat/"+s.StreamID+"/presence", s.Token,
				strings.NewReader(`{"show":"away"}`), "application/json")
		},
		ws: map[string]any{"type": "presence", "presence": map[string]any{"show": "away"}},
	}
	message := func(to, body string) action {
		return action{
			rest: func(s session) (*http.Response, string) {
				return e.do(http.MethodPost, "/restapi/v1/chat/"+s.StreamID+"/messages/"+to, s.Token,
					strings.NewReader(body), "text/plain")
			},
			ws: map[string]any{"type": "message", "to": to, "body": body},
		}
	}
	ok := outcome{OK: true}
	for _, tc := range []struct {
		name    string
		actions []action
		want    []outcome
	}{
		{"presence beyond the send rate (burst 2)", []action{presence, presence, presence},
			[]outcome{ok, ok, {HTTP: 429, Code: errSendRateLimited.code}}},
		{"message body over MaxMessageBytes", []action{message(bob, strings.Repeat("x", 17))},
			[]outcome{{HTTP: 413, Code: errTooLarge.code}}},
		{"message within the limits", []action{message(bob, "hi")}, []outcome{ok}},
		{"message to an invalid address", []action{message("a@b@c", "hi")},
			[]outcome{{HTTP: 400, Code: errInvalidAddress.code}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rest := e.login(e.newUser("rulesrest"))
			var gotREST []outcome
			for _, a := range tc.actions {
				res, body := a.rest(rest)
				gotREST = append(gotREST, restOutcome(t, res, body))
			}
			require.Equal(t, tc.want, gotREST, "REST")

			sock := e.login(e.newUser("rulesws"))
			ws, _, err := e.dialWS(t, "/restapi/v1/chat/"+sock.StreamID+"/ws", bearerHeader(sock.Token))
			require.NoError(t, err)
			var gotWS []outcome
			for i, a := range tc.actions {
				frame := map[string]any{"id": "c" + string(rune('0'+i))}
				for k, v := range a.ws {
					frame[k] = v
				}
				ws.send(t, frame)
				reply := ws.next(t, replyTo(frame["id"].(string)))
				if reply["type"] == "ok" {
					gotWS = append(gotWS, ok)
					continue
				}
				require.Equal(t, "error", reply["type"], reply)
				gotWS = append(gotWS, outcome{HTTP: int(reply["http"].(float64)), Code: int(reply["code"].(float64))})
			}
			require.Equal(t, tc.want, gotWS, "WebSocket")
		})
	}
}
