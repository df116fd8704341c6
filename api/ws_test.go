package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/xmppgw/xmppgw/sse"
)

// wsClient is a test WebSocket client reading JSON frames into a channel.
type wsClient struct {
	conn   *websocket.Conn
	frames chan map[string]any
	done   chan struct{}
	err    error // the read error that ended it; read after done
}

func (e *testEnv) dialWS(t *testing.T, path string, header http.Header) (*wsClient, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.http.URL, "http")+path, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		return nil, res, err
	}
	c := &wsClient{conn: conn, frames: make(chan map[string]any, 4096), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				c.err = err
				return
			}
			var m map[string]any
			if json.Unmarshal(data, &m) != nil {
				m = map[string]any{"unparsable": string(data)}
			}
			c.frames <- m
		}
	}()
	t.Cleanup(func() {
		_ = conn.CloseNow()
		<-c.done
	})
	return c, res, nil
}

func (c *wsClient) send(t *testing.T, frame any) {
	t.Helper()
	var data []byte
	if s, ok := frame.(string); ok {
		data = []byte(s)
	} else {
		var err error
		data, err = json.Marshal(frame)
		require.NoError(t, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.conn.Write(ctx, websocket.MessageText, data))
}

func (c *wsClient) next(t *testing.T, keep func(map[string]any) bool) map[string]any {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-c.frames:
			if keep == nil || keep(m) {
				return m
			}
		case <-c.done:
			select {
			case m := <-c.frames:
				if keep == nil || keep(m) {
					return m
				}
				continue
			default:
			}
			t.Fatalf("websocket closed while waiting for a frame: %v", c.err)
		case <-timeout:
			t.Fatal("timed out waiting for a websocket frame")
		}
	}
}

func replyTo(id string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["reply-to"] == id }
}

func (c *wsClient) waitClose(t *testing.T) websocket.StatusCode {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatal("websocket still open")
	}
	return websocket.CloseStatus(c.err)
}

func TestWS_ChatWithSSEClientAndReplies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	p := newPair(t, e)
	ws, _, err := e.dialWS(t, "/restapi/v1/chat/"+p.alice.StreamID+"/ws?token="+p.alice.Token, nil)
	require.NoError(t, err)

	// Retained events first (the stream's "online"), with their event ids.
	first := ws.next(t, ofType("stream"))
	require.NotEmpty(t, first["event_id"])

	ws.send(t, map[string]any{"type": "message", "id": "c1", "to": p.bobBare, "body": "hello over ws"})
	ok := ws.next(t, replyTo("c1"))
	require.Equal(t, "ok", ok["type"])
	require.NotEmpty(t, ok["id"], "the stanza id")
	_, got := p.bobEv.next(t, ofType("chat"))
	require.Equal(t, "hello over ws", got["body"])
	require.Equal(t, ok["id"], got["id"])

	// bob (REST + SSE) answers; the WebSocket gets the same event as SSE.
	e.post(p.bob, http.MethodPost, "/messages/"+p.aliceBare, map[string]any{"body": "hi back", "data": map[string]any{"k": 1}}, http.StatusAccepted)
	ev := ws.next(t, ofType("chat"))
	require.Equal(t, "hi back", ev["body"])
	require.Equal(t, map[string]any{"k": float64(1)}, ev["data"])
	sseEv, sseData := p.aliceEv.next(t, ofType("chat"))
	require.Equal(t, sseEv.ID, ev["event_id"])
	require.Equal(t, sseData, withoutKeys(ev, "event_id"))

	// Commands share the REST validation; errors carry reply-to and the API error shape.
	ws.send(t, map[string]any{"type": "message", "id": "c2", "to": "not a jid@@", "body": "x"})
	bad := ws.next(t, replyTo("c2"))
	require.Equal(t, "error", bad["type"])
	require.Equal(t, float64(40002), bad["code"])
	ws.send(t, map[string]any{"type": "chatstate", "id": "c3", "to": p.bobBare, "state": "composing"})
	require.Equal(t, "ok", ws.next(t, replyTo("c3"))["type"])
	_, cs := p.bobEv.next(t, ofType("chatstate"))
	require.Equal(t, "composing", cs["state"])
	ws.send(t, map[string]any{"type": "chatstate", "id": "c4", "to": p.bobBare, "state": "dancing"})
	require.Equal(t, "error", ws.next(t, replyTo("c4"))["type"])
	ws.send(t, map[string]any{"type": "presence", "id": "c5", "presence": map[string]any{"show": "away", "status": "lunch"}})
	require.Equal(t, "ok", ws.next(t, replyTo("c5"))["type"])
	ws.send(t, map[string]any{"type": "marker", "id": "c6", "to": p.bobBare, "marker": "displayed", "message_id": "m1"})
	require.Equal(t, "ok", ws.next(t, replyTo("c6"))["type"])
	_, mk := p.bobEv.next(t, ofType("marker"))
	require.Equal(t, "m1", mk["id"])

	// Malformed and unknown frames get error frames; the connection stays.
	ws.send(t, "this is not json")
	require.Equal(t, "error", ws.next(t, func(m map[string]any) bool { return m["type"] == "error" && m["reply-to"] == nil })["type"])
	ws.send(t, map[string]any{"type": "teleport", "id": "c7"})
	require.Contains(t, ws.next(t, replyTo("c7"))["error"], "unknown command")
	ws.send(t, map[string]any{"type": "message", "id": "c8", "to": p.bobBare, "body": "x", "bogus": true})
	require.Equal(t, float64(40001), ws.next(t, replyTo("c8"))["code"])
	ws.send(t, map[string]any{"type": "ping", "id": "c9"})
	require.Equal(t, "ok", ws.next(t, replyTo("c9"))["type"])

	// Rooms through the same gateway methods.
	room := "ws" + strings.ReplaceAll(p.alice.user, "-", "")
	ws.send(t, map[string]any{"type": "join", "id": "r1", "room": room, "nick": "alice"})
	require.Equal(t, "ok", ws.next(t, replyTo("r1"))["type"])
	ws.send(t, map[string]any{"type": "room_message", "id": "r2", "room": room, "body": "hi room"})
	// The room's echo may overtake the reply frame: wait for both, in any order.
	var reply, echo map[string]any
	for reply == nil || echo == nil {
		m := ws.next(t, func(m map[string]any) bool { return m["reply-to"] == "r2" || m["type"] == "groupchat" })
		if m["type"] == "groupchat" {
			echo = m
		} else {
			reply = m
		}
	}
	require.Equal(t, "ok", reply["type"])
	require.Equal(t, "hi room", echo["body"])
	ws.send(t, map[string]any{"type": "leave", "id": "r3", "room": room})
	require.Equal(t, "ok", ws.next(t, replyTo("r3"))["type"])
	ws.send(t, map[string]any{"type": "leave", "id": "r4", "room": room})
	require.Equal(t, float64(40403), ws.next(t, replyTo("r4"))["code"])
}

func TestWS_RevokeClosesAndRejects(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	alice := e.login(e.newUser("alice"))
	path := "/restapi/v1/chat/" + alice.StreamID + "/ws"
	a, _, err := e.dialWS(t, path, bearerHeader(alice.Token))
	require.NoError(t, err)
	b, _, err := e.dialWS(t, path+"?token="+alice.Token, nil)
	require.NoError(t, err)
	a.next(t, ofType("stream"))
	b.next(t, ofType("stream"))

	res, body := e.do(http.MethodDelete, "/restapi/v1/chat/token", alice.Token, nil, "")
	require.Equal(t, http.StatusNoContent, res.StatusCode, body)
	require.Equal(t, wsCloseTokenRevoked, a.waitClose(t))
	require.Equal(t, wsCloseTokenRevoked, b.waitClose(t))

	_, res, err = e.dialWS(t, path+"?token="+alice.Token, nil)
	require.Error(t, err)
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	// Plain GETs and other users' streams are refused before any upgrade.
	res, body = e.do(http.MethodGet, path, "", nil, "")
	requireError(t, res, body, http.StatusUnauthorized)
}

func TestWS_ResumeLosesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	p := newPair(t, e)
	path := "/restapi/v1/chat/" + p.alice.StreamID + "/ws"
	ws, _, err := e.dialWS(t, path, bearerHeader(p.alice.Token))
	require.NoError(t, err)
	e.post(p.bob, http.MethodPost, "/messages/"+p.aliceBare, "before", http.StatusAccepted)
	last := ws.next(t, func(m map[string]any) bool { return m["body"] == "before" })["event_id"].(string)
	require.NoError(t, ws.conn.Close(websocket.StatusNormalClosure, "bye"))

	for i := range 5 {
		e.post(p.bob, http.MethodPost, "/messages/"+p.aliceBare, "missed "+strconv.Itoa(i), http.StatusAccepted)
	}
	// Wait until the stream has them all (alice's SSE sees the same topic).
	for i := range 5 {
		p.aliceEv.next(t, func(m map[string]any) bool { return m["body"] == "missed "+strconv.Itoa(i) })
	}

	ws2, _, err := e.dialWS(t, path+"?last_event_id="+last, bearerHeader(p.alice.Token))
	require.NoError(t, err)
	lastID, _ := strconv.Atoi(last)
	var bodies []string
	for len(bodies) < 5 {
		m := ws2.next(t, nil)
		id, err := strconv.Atoi(m["event_id"].(string))
		require.NoError(t, err)
		require.Equal(t, lastID+1, id, "gapless, no duplicates")
		lastID = id
		if m["type"] == "chat" {
			bodies = append(bodies, m["body"].(string))
		}
	}
	require.Equal(t, []string{"missed 0", "missed 1", "missed 2", "missed 3", "missed 4"}, bodies)
}

func TestWS_EventFrame(t *testing.T) {
	require.JSONEq(t, `{"event_id":"7","type":"chat","id":"s1"}`, string(eventFrame(sseEventOf(7, `{"type":"chat","id":"s1"}`))))
	require.JSONEq(t, `{"event_id":"8"}`, string(eventFrame(sseEventOf(8, `{}`))))
}

func sseEventOf(id uint64, data string) sse.Event { return sse.Event{ID: id, Data: []byte(data)} }

// TestWS_MessageSizeLimitAsREST: a 150 KB body is refused over the WebSocket
// with the same error as the REST route's 413 (both pass checkedMessage),
// for a 1:1 message, a nested message object and a room message; a body at
// the limit still goes out.
func TestWS_MessageSizeLimitAsREST(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	alice := e.login(e.newUser("wsbig"))
	big := strings.Repeat("x", 150*1024)
	res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+alice.StreamID+"/messages/bob@localhost", alice.Token,
		jsonBody(map[string]any{"body": big}), "application/json")
	rest := requireError(t, res, body, http.StatusRequestEntityTooLarge)

	ws, _, err := e.dialWS(t, "/restapi/v1/chat/"+alice.StreamID+"/ws", bearerHeader(alice.Token))
	require.NoError(t, err)
	room := "big" + strings.ReplaceAll(alice.user, "-", "")
	ws.send(t, map[string]any{"type": "join", "id": "j", "room": room, "nick": "alice"})
	require.Equal(t, "ok", ws.next(t, replyTo("j"))["type"])
	for _, frame := range []map[string]any{
		{"type": "message", "id": "b1", "to": "bob@localhost", "body": big},
		{"type": "message", "id": "b2", "to": "bob@localhost", "message": map[string]any{"body": big}},
		{"type": "room_message", "id": "b3", "room": room, "body": big},
	} {
		ws.send(t, frame)
		m := ws.next(t, replyTo(frame["id"].(string)))
		require.Equal(t, "error", m["type"], frame["id"])
		require.Equal(t, float64(rest.Code), m["code"], frame["id"])
		require.Equal(t, float64(http.StatusRequestEntityTooLarge), m["http"], frame["id"])
		require.Equal(t, rest.Error, m["error"], frame["id"])
	}
	ws.send(t, map[string]any{"type": "message", "id": "ok", "to": "bob@localhost", "body": big[:DefaultMaxMessageBytes]})
	require.Equal(t, "ok", ws.next(t, replyTo("ok"))["type"])
}

// One rule for both transports (tokenLife): a connection ends with its
// token's expiry or revocation, over SSE and over WebSocket alike.
func TestTokenLife_SameOverSSEAndWebSocket(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		ttl     time.Duration
		end     func(t *testing.T, e *testEnv, s session)
		wsClose websocket.StatusCode
	}{
		{"expiry", 2 * time.Second, func(*testing.T, *testEnv, session) {}, wsCloseTokenExpired},
		{"revocation", time.Hour, func(t *testing.T, e *testEnv, s session) {
			res, body := e.do(http.MethodDelete, "/restapi/v1/chat/token", s.Token, nil, "")
			require.Equal(t, http.StatusNoContent, res.StatusCode, body)
		}, wsCloseTokenRevoked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{tokenTTL: tc.ttl})
			s := e.login(e.newUser("life"))
			events := e.subscribe("/restapi/v1/chat/"+s.StreamID+"/events", bearerHeader(s.Token))
			ws, _, err := e.dialWS(t, "/restapi/v1/chat/"+s.StreamID+"/ws", bearerHeader(s.Token))
			require.NoError(t, err)
			ws.next(t, ofType("stream"))
			tc.end(t, e, s)
			require.Equal(t, tc.wsClose, ws.waitClose(t))
			events.waitEnd(t, 5*time.Second)
		})
	}
}
