package api

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/xmppgw/xmppgw/gateway"
)

func TestChat_AliceToBob_ExactFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	alice := e.login(e.newUser("alice"))
	bob := e.login(e.newUser("bob"))
	events := e.subscribe("/restapi/v1/chat/"+bob.StreamID+"/events", bearerHeader(bob.Token))
	_, online := events.next(t, ofType("stream"))
	require.Equal(t, "online", online["state"])

	bobBare := strings.SplitN(bob.JID, "/", 2)[0]
	tricky := "say \"hi\" & 'bye'\nsecond line\t</body><evil xmlns='x'/><body>üñí 😀 <script>alert(1)</script>"
	res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+alice.StreamID+"/messages/"+url.PathEscape(bobBare),
		alice.Token, strings.NewReader(tricky), "text/plain; charset=utf-8")
	require.Equal(t, http.StatusAccepted, res.StatusCode, body)
	var sent MessageResponse
	require.NoError(t, jsonUnmarshal(body, &sent))
	require.NotEmpty(t, sent.ID)

	// A sentinel after the tricky message proves no extra stanza was produced.
	res, body = e.do(http.MethodPost, "/restapi/v1/chat/"+alice.StreamID+"/messages/"+bobBare,
		alice.Token, jsonBody(map[string]any{"body": "sentinel", "id": "sentinel-1", "data": map[string]any{"n": 1, "s": "<x>"}}), "application/json")
	require.Equal(t, http.StatusAccepted, res.StatusCode, body)

	_, got := events.next(t, ofType("chat"))
	require.Equal(t, map[string]any{"type": "chat", "id": sent.ID, "origin_id": sent.ID, "from": alice.JID, "to": bobBare, "body": tricky},
		withoutKeys(got, "stanza_id", "stamp", "delayed"))
	stamp, err := time.Parse(time.RFC3339Nano, got["stamp"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), stamp, time.Minute)
	require.NotEmpty(t, got["stanza_id"], "Prosody archived it (MAM) and said so")
	_, next := events.next(t, func(m map[string]any) bool { return m["type"] != "presence" })
	require.Equal(t, "chat", next["type"], "the tricky body produced exactly one stanza")
	require.Equal(t, "sentinel", next["body"])
	require.Equal(t, "sentinel-1", next["id"])
	require.Equal(t, map[string]any{"n": float64(1), "s": "<x>"}, next["data"])
}

func TestChat_LargeBodySurvives(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	alice := e.login(e.newUser("alice"))
	bob := e.login(e.newUser("bob"))
	events := e.subscribe("/restapi/v1/chat/events?token="+bob.Token, nil)
	big := strings.Repeat("0123456789abcdef\"<>&😀\n", 70*1024/26)
	res, body := e.do(http.MethodPost, "/restapi/v1/chat/messages/"+strings.SplitN(bob.JID, "/", 2)[0],
		alice.Token, jsonBody(map[string]string{"body": big}), "application/json")
	require.Equal(t, http.StatusAccepted, res.StatusCode, body)
	_, got := events.next(t, ofType("chat"))
	require.Equal(t, big, got["body"])
	require.GreaterOrEqual(t, len(big), 64*1024)
}

func TestChat_BounceReportsFailedMessageID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	alice := e.login(e.newUser("alice"))
	events := e.subscribe("/restapi/v1/chat/"+alice.StreamID+"/events", bearerHeader(alice.Token))
	res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+alice.StreamID+"/messages/nobody-here@"+e.xmpp.Domain,
		alice.Token, strings.NewReader("hello?"), "text/plain")
	require.Equal(t, http.StatusAccepted, res.StatusCode, body)
	var sent MessageResponse
	require.NoError(t, jsonUnmarshal(body, &sent))
	_, got := events.next(t, ofType("error"))
	require.Equal(t, sent.ID, got["id"])
	require.Equal(t, "nobody-here@"+e.xmpp.Domain, got["from"])
	errObj, ok := got["error"].(map[string]any)
	require.True(t, ok, got)
	require.NotEmpty(t, errObj["condition"])
}

func TestPresence_ReachesSubscribedContact(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	alice := e.login(e.newUser("alice"))
	bob := e.login(e.newUser("bob"))
	aliceBare, bobBare := strings.SplitN(alice.JID, "/", 2)[0], strings.SplitN(bob.JID, "/", 2)[0]
	bobEvents := e.subscribe("/restapi/v1/chat/"+bob.StreamID+"/events", bearerHeader(bob.Token))
	aliceEvents := e.subscribe("/restapi/v1/chat/"+alice.StreamID+"/events", bearerHeader(alice.Token))

	// Mutual subscription over the REST presence endpoint (RFC 6121 §3).
	e.presence(alice, url.Values{"type": {"subscribe"}, "to": {bobBare}})
	_, req := bobEvents.next(t, func(m map[string]any) bool { return m["type"] == "subscription" && m["action"] == "subscribe" })
	require.Equal(t, aliceBare, req["from"])
	e.presence(bob, url.Values{"type": {"subscribed"}, "to": {aliceBare}})
	e.presence(bob, url.Values{"type": {"subscribe"}, "to": {aliceBare}})
	aliceEvents.next(t, func(m map[string]any) bool { return m["type"] == "subscription" && m["action"] == "subscribe" })
	e.presence(alice, url.Values{"type": {"subscribed"}, "to": {bobBare}})

	e.presence(alice, url.Values{"show": {"away"}, "status": {"in a \"meeting\" <b>"}, "priority": {"5"}})
	_, away := bobEvents.next(t, func(m map[string]any) bool {
		return m["type"] == "presence" && m["from"] == alice.JID && m["show"] == "away"
	})
	require.Equal(t, "available", away["presence_type"])
	require.Equal(t, "in a \"meeting\" <b>", away["status"])
	// The address as the server delivered it: Prosody stamps the bare JID
	// on a presence broadcast, ejabberd the resource's full JID.
	if e.onEjabberd() {
		require.Equal(t, bob.JID, away["to"])
	} else {
		require.Equal(t, bobBare, away["to"])
	}

	e.presence(alice, url.Values{"show": {"offline"}, "status": {"gone"}})
	_, off := bobEvents.next(t, func(m map[string]any) bool {
		return m["type"] == "presence" && m["from"] == alice.JID && m["presence_type"] != "available"
	})
	require.Equal(t, "unavailable", off["presence_type"])
	require.Equal(t, "offline", off["show"])
	require.Equal(t, "gone", off["status"])
}

func (e *testEnv) presence(s session, q url.Values) {
	e.t.Helper()
	res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+s.StreamID+"/presence?"+q.Encode(), s.Token, nil, "")
	require.Equal(e.t, http.StatusNoContent, res.StatusCode, body)
}

func TestEvents_TwoSubscribersAndReplay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{replay: 8})
	alice := e.login(e.newUser("alice"))
	bob := e.login(e.newUser("bob"))
	bobBare := strings.SplitN(bob.JID, "/", 2)[0]
	path := "/restapi/v1/chat/" + bob.StreamID + "/events"
	tab1 := e.subscribe(path, bearerHeader(bob.Token))
	tab2 := e.subscribe(path+"?token="+bob.Token, nil)
	send := func(body string) {
		res, b := e.do(http.MethodPost, "/restapi/v1/chat/"+alice.StreamID+"/messages/"+bobBare, alice.Token, strings.NewReader(body), "text/plain")
		require.Equal(t, http.StatusAccepted, res.StatusCode, b)
	}
	send("one")
	ev1, m1 := tab1.next(t, ofType("chat"))
	ev2, m2 := tab2.next(t, ofType("chat"))
	require.Equal(t, "one", m1["body"])
	require.Equal(t, "one", m2["body"])
	require.Equal(t, ev1.ID, ev2.ID, "every tab sees the same event id")

	// tab1 goes away; two messages arrive; it resumes with Last-Event-ID.
	tab1.close()
	send("two")
	send("three")
	tab2.next(t, func(m map[string]any) bool { return m["body"] == "three" })
	resumed := e.subscribe(path, http.Header{"Authorization": {"Bearer " + bob.Token}, "Last-Event-Id": {ev1.ID}})
	var bodies []string
	for len(bodies) < 2 {
		_, m := resumed.next(t, nil)
		require.NotEqual(t, "reset", m["type"])
		if m["type"] == "chat" {
			bodies = append(bodies, m["body"].(string))
		}
	}
	require.Equal(t, []string{"two", "three"}, bodies, "exactly the missed messages, in order")

	// Push the first events out of the 8-event buffer; an old id gets reset.
	for i := range 10 {
		send("fill-" + strconv.Itoa(i))
	}
	tab2.next(t, func(m map[string]any) bool { return m["body"] == "fill-9" })
	stale := e.subscribe(path+"?last_event_id="+ev1.ID, bearerHeader(bob.Token))
	resetEv, reset := stale.next(t, nil)
	require.Equal(t, "reset", reset["type"], reset)
	require.Equal(t, ev1.ID, reset["last_event_id"])
	_, first := stale.next(t, nil)
	oldest, err := strconv.Atoi(resetEv.ID)
	require.NoError(t, err)
	require.Equal(t, float64(oldest+1), reset["oldest_id"])
	require.NotNil(t, first["type"])
}

func TestAuth_Matrix(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	aliceUser, alicePass := e.newUser("alice")
	alice := e.login(aliceUser, alicePass)
	bob := e.login(e.newUser("bob"))
	msgPath := "/restapi/v1/chat/" + alice.StreamID + "/messages/someone@" + e.xmpp.Domain

	t.Run("wrong password", func(t *testing.T) {
		res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+aliceUser+"/login", "", strings.NewReader("nope"), "text/plain")
		er := requireError(t, res, body, http.StatusUnauthorized)
		require.Equal(t, 40104, er.Code)
	})
	t.Run("text/plain and Basic logins", func(t *testing.T) {
		res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+aliceUser+"/login", "", strings.NewReader(alicePass), "text/plain")
		require.Equal(t, http.StatusOK, res.StatusCode, body)
		req, _ := http.NewRequest(http.MethodPost, e.http.URL+"/restapi/v1/chat/login", nil)
		req.SetBasicAuth(strings.ToUpper(aliceUser[:1])+aliceUser[1:], alicePass)
		r2, err := e.http.Client().Do(req)
		require.NoError(t, err)
		r2.Body.Close()
		require.Equal(t, http.StatusOK, r2.StatusCode, "Basic login, username case-folded by PRECIS")
	})
	t.Run("no credentials", func(t *testing.T) {
		res, body := e.do(http.MethodPost, msgPath, "", strings.NewReader("x"), "text/plain")
		requireError(t, res, body, http.StatusUnauthorized)
		require.Contains(t, res.Header.Get("WWW-Authenticate"), "Bearer")
	})
	t.Run("other user's stream is not found", func(t *testing.T) {
		res, body := e.do(http.MethodPost, msgPath, bob.Token, strings.NewReader("x"), "text/plain")
		requireError(t, res, body, http.StatusNotFound)
		res, body = e.do(http.MethodPost, "/restapi/v1/chat/no-such-stream/messages/x@y", bob.Token, strings.NewReader("x"), "text/plain")
		requireError(t, res, body, http.StatusNotFound)
	})
	t.Run("forged token", func(t *testing.T) {
		forged := mintToken(t, []byte("another-secret-0123456789-abcdefghij"), alice, time.Hour)
		res, body := e.do(http.MethodPost, msgPath, forged, strings.NewReader("x"), "text/plain")
		er := requireError(t, res, body, http.StatusUnauthorized)
		require.Equal(t, 40101, er.Code)
		require.Contains(t, res.Header.Get("WWW-Authenticate"), `error="invalid_token"`)
	})
	t.Run("alg none token", func(t *testing.T) {
		unsigned, err := jwt.NewWithClaims(jwt.SigningMethodNone, claimsFor(alice, time.Hour)).SignedString(jwt.UnsafeAllowNoneSignatureType)
		require.NoError(t, err)
		res, body := e.do(http.MethodPost, msgPath, unsigned, strings.NewReader("x"), "text/plain")
		requireError(t, res, body, http.StatusUnauthorized)
	})
	t.Run("expired token", func(t *testing.T) {
		expired := mintToken(t, testSecret, alice, -time.Minute)
		res, body := e.do(http.MethodPost, msgPath, expired, strings.NewReader("x"), "text/plain")
		er := requireError(t, res, body, http.StatusUnauthorized)
		require.Equal(t, 40102, er.Code)
	})
	t.Run("basic auth of the same user works, wrong password does not", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.http.URL+"/restapi/v1/chat/"+alice.StreamID+"/presence?show=chat", nil)
		req.SetBasicAuth(aliceUser, alicePass)
		res, err := e.http.Client().Do(req)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusNoContent, res.StatusCode)
		req, _ = http.NewRequest(http.MethodPost, e.http.URL+"/restapi/v1/chat/"+alice.StreamID+"/presence?show=chat", nil)
		req.SetBasicAuth(aliceUser, "wrong")
		res, err = e.http.Client().Do(req)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	})
	t.Run("bad input", func(t *testing.T) {
		res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+alice.StreamID+"/messages/not@a@jid", alice.Token, strings.NewReader("x"), "text/plain")
		er := requireError(t, res, body, http.StatusBadRequest)
		require.Equal(t, 40002, er.Code)
		res, body = e.do(http.MethodPost, "/restapi/v1/chat/"+alice.StreamID+"/messages/b@x", alice.Token, strings.NewReader(`{"body":"x","bogus":1}`), "application/json")
		require.Equal(t, 40001, requireError(t, res, body, http.StatusBadRequest).Code)
		res, body = e.do(http.MethodPost, "/restapi/v1/chat/"+alice.StreamID+"/messages/b@x", alice.Token, strings.NewReader("a\x00b"), "text/plain")
		require.Equal(t, 40003, requireError(t, res, body, http.StatusBadRequest).Code)
		res, body = e.do(http.MethodPost, "/restapi/v1/chat/"+alice.StreamID+"/presence?show=busy", alice.Token, nil, "")
		require.Equal(t, 40003, requireError(t, res, body, http.StatusBadRequest).Code)
		res, body = e.do(http.MethodPost, "/restapi/v1/chat/"+alice.StreamID+"/messages/b@x", alice.Token, strings.NewReader("<x/>"), "application/xml")
		requireError(t, res, body, http.StatusUnsupportedMediaType)
		res, body = e.do(http.MethodPost, "/restapi/v1/chat/"+alice.StreamID+"/messages/b@x", alice.Token, strings.NewReader(strings.Repeat("x", 2<<20)), "text/plain")
		requireError(t, res, body, http.StatusRequestEntityTooLarge)
		res, body = e.do(http.MethodGet, "/restapi/v1/nope", "", nil, "")
		requireError(t, res, body, http.StatusNotFound)
	})
	t.Run("logoff ends SSE and revokes the token", func(t *testing.T) {
		s := e.login(aliceUser, alicePass)
		events := e.subscribe("/restapi/v1/chat/"+s.StreamID+"/events?token="+s.Token, nil)
		events.next(t, ofType("stream"))
		res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+s.StreamID+"/logoff", s.Token, nil, "")
		require.Equal(t, http.StatusNoContent, res.StatusCode, body)
		_, last := events.next(t, func(m map[string]any) bool { return m["type"] == "stream" && m["state"] == "offline" })
		require.Equal(t, "logged off", last["reason"])
		events.waitEnd(t, 2*time.Second)
		res, body = e.do(http.MethodPost, "/restapi/v1/chat/"+s.StreamID+"/presence", s.Token, nil, "")
		require.Equal(t, 40103, requireError(t, res, body, http.StatusUnauthorized).Code)
	})
}

func claimsFor(s session, ttl time.Duration) tokenClaims {
	now := time.Now()
	return tokenClaims{SID: s.StreamID, RegisteredClaims: jwt.RegisteredClaims{Subject: strings.SplitN(s.JID, "/", 2)[0],
		Issuer: tokenIssuer, ExpiresAt: jwt.NewNumericDate(now.Add(ttl)), IssuedAt: jwt.NewNumericDate(now), ID: "test-" + strconv.FormatInt(now.UnixNano(), 36)}}
}

func mintToken(t *testing.T, secret []byte, s session, ttl time.Duration) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claimsFor(s, ttl)).SignedString(secret)
	require.NoError(t, err)
	return tok
}

func TestLogin_ServerDown_Or_Stalled(t *testing.T) {
	t.Parallel()
	// Unreachable: a port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadAddr := ln.Addr().String()
	require.NoError(t, ln.Close())
	e := newEnv(t, envOptions{addr: deadAddr, loginLimit: 2 * time.Second})
	res, body := e.do(http.MethodPost, "/restapi/v1/chat/alice/login", "", strings.NewReader("demo"), "text/plain")
	requireError(t, res, body, http.StatusBadGateway)
	res, body = e.do(http.MethodGet, "/readyz", "", nil, "")
	requireError(t, res, body, http.StatusServiceUnavailable)

	// Stalled: accepts TCP, never speaks XMPP.
	stalled, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := stalled.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	e2 := newEnv(t, envOptions{addr: stalled.Addr().String(), loginLimit: 300 * time.Millisecond})
	// Registered after newEnv so it runs first: closing the server side ends
	// the abandoned login goroutine, which the manager's Close waits for.
	t.Cleanup(func() {
		_ = stalled.Close()
		for c := range accepted {
			_ = c.Close()
		}
	})
	start := time.Now()
	res, body = e2.do(http.MethodPost, "/restapi/v1/chat/alice/login", "", strings.NewReader("demo"), "text/plain")
	requireError(t, res, body, http.StatusGatewayTimeout)
	require.Less(t, time.Since(start), 5*time.Second, "the login deadline holds")
}

func TestLogin_FailedLoginsDoNotLeakSockets(t *testing.T) {
	e := newEnv(t, envOptions{api: Config{LoginFailuresPerUser: 1000, LoginFailuresPerIP: 1000}})
	user, _ := e.newUser("leak")
	openFDs := func() int {
		entries, err := os.ReadDir("/proc/self/fd")
		require.NoError(t, err)
		return len(entries)
	}
	// One warm-up so lazily opened descriptors do not count.
	e.do(http.MethodPost, "/restapi/v1/chat/"+user+"/login", "", strings.NewReader("wrong"), "text/plain")
	before := openFDs()
	for range 20 {
		res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+user+"/login", "", strings.NewReader("wrong"), "text/plain")
		requireError(t, res, body, http.StatusUnauthorized)
	}
	require.Eventually(t, func() bool {
		return openFDs() <= before+3
	}, 10*time.Second, 100*time.Millisecond, "sockets of failed logins are closed")
}

func TestStream_ReconnectsAfterServerRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	xs := xmppForTest(t)
	e := newEnv(t, envOptions{xmpp: xs})
	// alice's stream is opened on her behalf: its reconnect must mint a new
	// XMPP token, since the gateway never had her password.
	aliceUser, _ := e.newUser("alice")
	alice := e.adminLogin(aliceUser)
	bob := e.login(e.newUser("bob"))
	bobBare := strings.SplitN(bob.JID, "/", 2)[0]
	events := e.subscribe("/restapi/v1/chat/"+bob.StreamID+"/events", bearerHeader(bob.Token))
	events.next(t, ofType("stream"))

	require.NoError(t, xs.Kill())
	_, ev := events.next(t, func(m map[string]any) bool { return m["type"] == "stream" && m["state"] == "reconnecting" })
	require.Equal(t, bobBare, ev["jid"])
	// alice's stream notices the drop on its own read; once it has, sends get 503.
	require.Eventually(t, func() bool {
		st, err := e.mgr.Stream(alice.StreamID)
		return err == nil && st.State() == gateway.StateReconnecting
	}, 10*time.Second, 10*time.Millisecond)
	res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+alice.StreamID+"/messages/"+bobBare, alice.Token, strings.NewReader("during outage"), "text/plain")
	requireError(t, res, body, http.StatusServiceUnavailable)

	require.NoError(t, xs.Restart(ctx))
	_, back := events.next(t, func(m map[string]any) bool { return m["type"] == "stream" && m["state"] == "online" })
	require.True(t, strings.HasPrefix(back["jid"].(string), bobBare+"/"))
	require.Eventually(t, func() bool {
		st, err := e.mgr.Stream(alice.StreamID)
		return err == nil && st.State() == gateway.StateOnline
	}, 20*time.Second, 50*time.Millisecond)
	res, body = e.do(http.MethodPost, "/restapi/v1/chat/"+alice.StreamID+"/messages/"+bobBare, alice.Token, strings.NewReader("after restart"), "text/plain")
	require.Equal(t, http.StatusAccepted, res.StatusCode, body)
	_, msg := events.next(t, ofType("chat"))
	require.Equal(t, "after restart", msg["body"])
}

func TestStream_StartTLSWithVerifiedCertificate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{tls: gateway.TLSStartTLS})
	s := e.login(e.newUser("tls"))
	require.NotEmpty(t, s.StreamID)

	// The gateway writes stanzas to the TLS connection itself, past mellium's encoder.
	bob := e.login(e.newUser("tlsbob"))
	events := e.subscribe("/restapi/v1/chat/"+bob.StreamID+"/events", bearerHeader(bob.Token))
	events.next(t, ofType("stream"))
	res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+s.StreamID+"/messages/"+strings.SplitN(bob.JID, "/", 2)[0],
		s.Token, strings.NewReader("over TLS"), "text/plain")
	require.Equal(t, http.StatusAccepted, res.StatusCode, body)
	_, got := events.next(t, ofType("chat"))
	require.Equal(t, "over TLS", got["body"])
}

// The resource asked for at login is the one the server binds (with the
// gateway's unique suffix): the login negotiates binding itself.
func TestLogin_BindsTheRequestedResource(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	user, pass := e.newUser("res")
	res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+user+"/login", "",
		jsonBody(map[string]string{"password": pass, "resource": "desk"}), "application/json")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	var lr LoginResponse
	require.NoError(t, json.Unmarshal([]byte(body), &lr))
	require.Regexp(t, `^`+user+`@[^/]+/desk\.[0-9a-f]{12}$`, lr.JID)
}

func TestStream_IdleStreamIsClosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{idle: 300 * time.Millisecond})
	s := e.login(e.newUser("idle"))
	require.Eventually(t, func() bool {
		_, err := e.mgr.Stream(s.StreamID)
		return err != nil
	}, 10*time.Second, 50*time.Millisecond)
	res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+s.StreamID+"/presence", s.Token, nil, "")
	requireError(t, res, body, http.StatusNotFound)
}

func TestLogs_HoldNoSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	user, pass := e.newUser("logscan")
	s := e.login(user, pass)
	events := e.subscribe("/restapi/v1/chat/"+s.StreamID+"/events?token="+s.Token, nil)
	events.next(t, ofType("stream"))
	e.do(http.MethodPost, "/restapi/v1/chat/"+user+"/login", "", strings.NewReader("wrong-"+pass), "text/plain")
	behalf := e.adminLogin(user)
	e.doH(http.MethodGet, "/restapi/v1/admin/streams", adminHeader(), nil, "")
	e.doH(http.MethodPost, "/restapi/v1/admin/notifications/"+user, adminHeader(), jsonBody(NotificationRequest{Body: "n"}), "application/json")
	adminTok, _, err := MintAdminToken(testSecret, "ci", time.Minute)
	require.NoError(t, err)
	e.do(http.MethodGet, "/restapi/v1/admin/streams", adminTok, nil, "")
	e.do(http.MethodDelete, "/restapi/v1/chat/token", behalf.Token, nil, "")
	e.do(http.MethodPost, "/restapi/v1/chat/"+s.StreamID+"/logoff", s.Token, nil, "")
	events.waitEnd(t, 2*time.Second)
	// The event stream's request line is written when its handler returns.
	require.Eventually(t, func() bool {
		return strings.Contains(e.logs.String(), `"route":"/restapi/v1/chat/{streamid}/events"`)
	}, 2*time.Second, 10*time.Millisecond, "requests were logged")
	logs := e.logs.String() + e.xmpp.LogTail(100000)
	require.Contains(t, logs, `"tag":"audit"`, "admin actions were logged")
	for name, secret := range map[string]string{
		"password": pass, "token": s.Token, "on-behalf token": behalf.Token, "admin token": adminTok,
		"stream id": s.StreamID, "admin password": testAdminPassword, "API secret": string(testSecret),
		"XMPP token secret": string(xmppTokenSecret),
		"Basic header":      base64.StdEncoding.EncodeToString([]byte(testAdminUser + ":" + testAdminPassword)),
	} {
		require.NotContains(t, logs, secret, name)
	}
}

// The HTTP server's WriteTimeout bounds REST responses; event streams push
// their own deadline forward, through the logging middleware's wrapper.
func TestEvents_OutliveServerWriteTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	s := e.login(e.newUser("long"))
	slow := httptest.NewUnstartedServer(e.srv.Routes())
	slow.Config.WriteTimeout = 500 * time.Millisecond
	slow.Start()
	t.Cleanup(slow.Close)
	req, err := http.NewRequest(http.MethodGet, slow.URL+"/restapi/v1/chat/"+s.StreamID+"/events?token="+s.Token, nil)
	require.NoError(t, err)
	res, err := slow.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	time.Sleep(1500 * time.Millisecond) // three write timeouts; heartbeats (1 s) keep writing
	user := strings.SplitN(s.JID, "/", 2)[0]
	res2, body := e.do(http.MethodPost, "/restapi/v1/chat/"+s.StreamID+"/messages/"+user, s.Token, strings.NewReader("to myself"), "text/plain")
	require.Equal(t, http.StatusAccepted, res2.StatusCode, body)
	sc := bufio.NewScanner(res.Body)
	found := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"body":"to myself"`) {
			found = true
			break
		}
	}
	require.True(t, found, "stream still delivering after the write timeout: %v", sc.Err())
}
