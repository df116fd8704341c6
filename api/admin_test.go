package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// adminHeader is HTTP Basic with the test env's admin credentials.
func adminHeader() http.Header {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(testAdminUser, testAdminPassword)
	return r.Header
}

// doH sends a request with the given headers and returns the body.
func (e *testEnv) doH(method, path string, h http.Header, body io.Reader, contentType string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.http.URL+path, body)
	require.NoError(e.t, err)
	for k, v := range h {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := e.http.Client().Do(req)
	require.NoError(e.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(e.t, err)
	return res, string(b)
}

// adminLogin opens a stream for user on their behalf (no password).
func (e *testEnv) adminLogin(user string) session {
	e.t.Helper()
	res, body := e.doH(http.MethodPost, "/restapi/v1/chat/"+user+"/login", adminHeader(), nil, "")
	require.Equal(e.t, http.StatusOK, res.StatusCode, body)
	var lr LoginResponse
	require.NoError(e.t, json.Unmarshal([]byte(body), &lr))
	return session{LoginResponse: lr, user: user}
}

func bare(fullJID string) string { return strings.SplitN(fullJID, "/", 2)[0] }

func TestAdmin_OnBehalfLoginChatsAndIsAudited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	aliceUser, _ := e.newUser("alice")
	bob := e.login(e.newUser("bob"))
	bobEvents := e.subscribe("/restapi/v1/chat/"+bob.StreamID+"/events", bearerHeader(bob.Token))

	alice := e.adminLogin(aliceUser)
	require.True(t, strings.HasPrefix(alice.JID, aliceUser+"@"+e.xmpp.Domain+"/"), alice.JID)
	// The returned token is alice's own: it drives her stream.
	res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+alice.StreamID+"/messages/"+bare(bob.JID), alice.Token,
		strings.NewReader("sent for alice"), "text/plain")
	require.Equal(t, http.StatusAccepted, res.StatusCode, body)
	_, msg := bobEvents.next(t, ofType("chat"))
	require.Equal(t, "sent for alice", msg["body"])
	require.Equal(t, alice.JID, msg["from"])

	// Admins can act on any stream directly, and list streams.
	res, body = e.doH(http.MethodPost, "/restapi/v1/chat/"+bob.StreamID+"/presence?show=dnd", adminHeader(), nil, "")
	require.Equal(t, http.StatusNoContent, res.StatusCode, body)
	res, body = e.doH(http.MethodGet, "/restapi/v1/admin/streams", adminHeader(), nil, "")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	var list StreamList
	require.NoError(t, json.Unmarshal([]byte(body), &list))
	byID := map[string]StreamInfo{}
	for _, s := range list.Streams {
		byID[s.StreamID] = s
	}
	require.True(t, byID[alice.StreamID].OnBehalf)
	require.False(t, byID[bob.StreamID].OnBehalf)
	require.Equal(t, 1, byID[bob.StreamID].Subscribers)
	require.Equal(t, "online", byID[bob.StreamID].State)

	logs := e.logs.String()
	require.Contains(t, logs, `"action":"login.on_behalf","on_behalf_of":"`+aliceUser+`"`)
	require.Contains(t, logs, `"actor":"admin:ops","action":"stream.POST /restapi/v1/chat/{streamid}/presence","on_behalf_of":"`+bare(bob.JID)+`"`)
	require.Contains(t, logs, `"action":"streams.list"`)
	require.NotContains(t, logs, testAdminPassword)

	// Admin kill: the stream's event stream ends and its tokens die.
	res, body = e.doH(http.MethodDelete, "/restapi/v1/admin/streams/"+bob.StreamID, adminHeader(), nil, "")
	require.Equal(t, http.StatusNoContent, res.StatusCode, body)
	bobEvents.waitEnd(t, 2*time.Second)
	res, body = e.do(http.MethodPost, "/restapi/v1/chat/"+bob.StreamID+"/presence", bob.Token, nil, "")
	require.Equal(t, 40103, requireError(t, res, body, http.StatusUnauthorized).Code)
}

func TestAdmin_PasswordlessLoginNeedsAdmin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	aliceUser, _ := e.newUser("alice")
	existing := e.adminLogin(aliceUser)
	bobUser, bobPass := e.newUser("bob")
	bob := e.login(bobUser, bobPass)
	path := "/restapi/v1/chat/" + aliceUser + "/login"
	basic := func(u, p string) http.Header {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.SetBasicAuth(u, p)
		return r.Header
	}
	for name, h := range map[string]http.Header{
		"no credentials":         nil,
		"another user's Basic":   basic(bobUser, bobPass),
		"another user's token":   bearerHeader(bob.Token),
		"wrong admin password":   basic(testAdminUser, "nope-nope-nope"),
		"the victim's own token": bearerHeader(existing.Token),
	} {
		for _, body := range []string{"", "{}"} {
			res, out := e.doH(http.MethodPost, path, h, strings.NewReader(body), "text/plain")
			er := requireError(t, res, out, http.StatusUnauthorized)
			require.NotContains(t, out, existing.StreamID, name)
			require.NotEqual(t, 0, er.Code, name)
		}
	}
	// An admin token (xmppgw token --admin) works like admin Basic.
	adminTok, _, err := MintAdminToken(testSecret, "ci", time.Minute)
	require.NoError(t, err)
	res, body := e.doH(http.MethodPost, path, bearerHeader(adminTok), nil, "")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	require.NotContains(t, body, existing.StreamID, "a new stream, never someone's existing one")
	// A user cannot reach the admin routes.
	res, body = e.do(http.MethodGet, "/restapi/v1/admin/streams", bob.Token, nil, "")
	requireError(t, res, body, http.StatusForbidden)
}

func TestTokens_RevokedTokenClosesItsEventStreamAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	s := e.login(e.newUser("rev"))
	refreshed := e.refresh(s)
	viaQuery := e.subscribe("/restapi/v1/chat/"+s.StreamID+"/events?token="+s.Token, nil)
	other := e.subscribe("/restapi/v1/chat/"+s.StreamID+"/events", bearerHeader(refreshed.Token))
	viaQuery.next(t, ofType("stream"))
	other.next(t, ofType("stream"))

	start := time.Now()
	res, body := e.do(http.MethodDelete, "/restapi/v1/chat/token", s.Token, nil, "")
	require.Equal(t, http.StatusNoContent, res.StatusCode, body)
	viaQuery.waitEnd(t, time.Second)
	require.Less(t, time.Since(start), time.Second)
	res, body = e.do(http.MethodPost, "/restapi/v1/chat/"+s.StreamID+"/presence", s.Token, nil, "")
	require.Equal(t, 40103, requireError(t, res, body, http.StatusUnauthorized).Code)
	require.Contains(t, res.Header.Get("WWW-Authenticate"), `error="invalid_token"`)

	// The refreshed token, and its event stream, live on.
	res, body = e.do(http.MethodPost, "/restapi/v1/chat/"+s.StreamID+"/presence?show=away", refreshed.Token, nil, "")
	require.Equal(t, http.StatusNoContent, res.StatusCode, body)
	_, p := other.next(t, func(m map[string]any) bool { return m["type"] == "presence" && m["show"] == "away" })
	require.Equal(t, s.JID, p["from"])
}

func (e *testEnv) refresh(s session) session {
	e.t.Helper()
	res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+s.StreamID+"/token", s.Token, nil, "")
	require.Equal(e.t, http.StatusOK, res.StatusCode, body)
	var lr LoginResponse
	require.NoError(e.t, json.Unmarshal([]byte(body), &lr))
	require.Equal(e.t, s.StreamID, lr.StreamID)
	require.NotEqual(e.t, s.Token, lr.Token)
	return session{LoginResponse: lr, user: s.user, pass: s.pass}
}

func TestLogin_BruteForceGets429(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{api: Config{LoginFailuresPerUser: 3}})
	user, pass := e.newUser("brute")
	for range 3 {
		res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+user+"/login", "", strings.NewReader("guess"), "text/plain")
		requireError(t, res, body, http.StatusUnauthorized)
	}
	res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+user+"/login", "", strings.NewReader("guess"), "text/plain")
	er := requireError(t, res, body, http.StatusTooManyRequests)
	require.Equal(t, 42900, er.Code)
	retry, err := strconv.Atoi(res.Header.Get("Retry-After"))
	require.NoError(t, err)
	require.Positive(t, retry)
	// Even the right password waits: otherwise guessing could go on.
	res, body = e.do(http.MethodPost, "/restapi/v1/chat/"+user+"/login", "", strings.NewReader(pass), "text/plain")
	requireError(t, res, body, http.StatusTooManyRequests)
	// Other users are unaffected.
	other := e.login(e.newUser("bystander"))

	// Guessing through HTTP Basic on any route is throttled the same way
	// (no XMPP round trip there, so it would otherwise be fast).
	basic := func(u, p string) http.Header {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.SetBasicAuth(u, p)
		return r.Header
	}
	for range 3 {
		res, body := e.doH(http.MethodPost, "/restapi/v1/chat/"+other.StreamID+"/presence", basic(other.user, "guess"), nil, "")
		requireError(t, res, body, http.StatusUnauthorized)
	}
	res, body = e.doH(http.MethodPost, "/restapi/v1/chat/"+other.StreamID+"/presence", basic(other.user, other.pass), nil, "")
	require.Equal(t, 42900, requireError(t, res, body, http.StatusTooManyRequests).Code)
	for range 3 {
		res, body := e.doH(http.MethodGet, "/restapi/v1/admin/streams", basic(testAdminUser, "guess-guess-guess"), nil, "")
		requireError(t, res, body, http.StatusUnauthorized)
	}
	res, body = e.doH(http.MethodGet, "/restapi/v1/admin/streams", adminHeader(), nil, "")
	require.Equal(t, 42900, requireError(t, res, body, http.StatusTooManyRequests).Code, "the admin name is throttled too")
}

func TestLimits_StreamsPerUserSendRateAndBodySize(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{gateway: gatewayLimits(2), api: Config{SendsPerSecond: 1}})
	user, pass := e.newUser("lim")
	s := e.login(user, pass)
	s2 := e.login(user, pass)
	res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+user+"/login", "", strings.NewReader(pass), "text/plain")
	require.Equal(t, 42902, requireError(t, res, body, http.StatusTooManyRequests).Code)

	self := "/restapi/v1/chat/" + s.StreamID + "/messages/" + bare(s.JID)
	sent, limited := 0, 0
	for range 5 {
		res, _ := e.do(http.MethodPost, self, s.Token, strings.NewReader("x"), "text/plain")
		switch res.StatusCode {
		case http.StatusAccepted:
			sent++
		case http.StatusTooManyRequests:
			limited++
			require.NotEmpty(t, res.Header.Get("Retry-After"))
		}
	}
	require.Equal(t, 2, sent, "burst of twice the per-second rate")
	require.Equal(t, 3, limited)

	res, body = e.do(http.MethodPost, "/restapi/v1/chat/"+s2.StreamID+"/messages/"+bare(s.JID), s2.Token,
		strings.NewReader(strings.Repeat("x", DefaultMaxMessageBytes+1)), "text/plain")
	requireError(t, res, body, http.StatusRequestEntityTooLarge)
}

func TestEvents_CookieAuthAndSubscriberCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxSubscribers: 1})
	user, pass := e.newUser("cookie")
	res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+user+"/login?cookie=true", "", strings.NewReader(pass), "text/plain")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	var lr LoginResponse
	require.NoError(t, json.Unmarshal([]byte(body), &lr))
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == tokenCookie {
			cookie = c
		}
	}
	require.NotNil(t, cookie)
	require.True(t, cookie.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, cookie.SameSite)
	require.Equal(t, "/restapi/v1/chat", cookie.Path)
	require.False(t, cookie.Secure, "plain HTTP test server")
	events := e.subscribe("/restapi/v1/chat/"+lr.StreamID+"/events", http.Header{"Cookie": {tokenCookie + "=" + cookie.Value}})
	events.next(t, ofType("stream"))
	// The env allows one subscriber per stream: a second tab is refused.
	res, body = e.do(http.MethodGet, "/restapi/v1/chat/"+lr.StreamID+"/events", lr.Token, nil, "")
	require.Equal(t, 42903, requireError(t, res, body, http.StatusTooManyRequests).Code)
	// The cookie opens only the event stream, never a state-changing call,
	// and not the WebSocket either (it carries commands).
	res, body = e.doH(http.MethodGet, "/restapi/v1/chat/"+lr.StreamID+"/ws", http.Header{"Cookie": {tokenCookie + "=" + cookie.Value}}, nil, "")
	requireError(t, res, body, http.StatusUnauthorized)
	res, body = e.doH(http.MethodPost, "/restapi/v1/chat/"+lr.StreamID+"/presence", http.Header{"Cookie": {tokenCookie + "=" + cookie.Value}}, nil, "")
	requireError(t, res, body, http.StatusUnauthorized)
}

func TestNotifications_ReachUserWithModuleIdentifier(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	bob := e.login(e.newUser("bob"))
	events := e.subscribe("/restapi/v1/chat/"+bob.StreamID+"/events", bearerHeader(bob.Token))
	res, body := e.doH(http.MethodPost, "/restapi/v1/admin/notifications/"+bob.user, adminHeader(),
		jsonBody(NotificationRequest{Body: "maintenance at 22:00", Params: map[string]string{"severity": "high", "url": "https://x/?a=1&b=<2>"}}),
		"application/json")
	require.Equal(t, http.StatusAccepted, res.StatusCode, body)
	_, n := events.next(t, ofType("system"))
	require.Equal(t, "maintenance at 22:00", n["body"])
	require.True(t, strings.HasPrefix(n["from"].(string), notifyAccount+"@"), n["from"])
	require.Equal(t, map[string]any{"severity": "high", "url": "https://x/?a=1&b=<2>"}, n["params"])

	res, body = e.doH(http.MethodPost, "/restapi/v1/admin/notifications/"+bob.user, adminHeader(),
		jsonBody(map[string]any{"params": map[string]string{"bad name": "x"}}), "application/json")
	requireError(t, res, body, http.StatusBadRequest)

	// A user cannot forge one: the same stanza from an ordinary account is
	// an ordinary headline.
	mallory := e.login(e.newUser("mallory"))
	e.post(mallory, http.MethodPost, "/messages/"+bare(bob.JID), map[string]any{"type": "headline", "body": "re-enter your password",
		"extraParams": map[string]any{"moduleIdentifier": "SystemNotifications"}}, http.StatusAccepted)
	_, forged := events.next(t, func(m map[string]any) bool { return m["body"] == "re-enter your password" })
	require.Equal(t, "headline", forged["type"])
}

func TestShutdown_ClosesStreamsWithFinalEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	s := e.login(e.newUser("bye"))
	events := e.subscribe("/restapi/v1/chat/"+s.StreamID+"/events", bearerHeader(s.Token))
	events.next(t, ofType("stream"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.mgr.Close(ctx))
	_, last := events.next(t, func(m map[string]any) bool { return m["type"] == "stream" && m["state"] == "offline" })
	require.NotEmpty(t, last["reason"])
	events.waitEnd(t, 2*time.Second)
	res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+e.xmpp.Domain+"/login", "", strings.NewReader("x"), "text/plain")
	requireError(t, res, body, http.StatusServiceUnavailable)
}

// An admin logging in on behalf of an account that does not exist gets a
// clear 404 on every server, though the servers refuse differently
// (Prosody's token module in SASL, ejabberd not at all: the gateway's
// account probe finds out); no stream is left behind.
func TestAdmin_OnBehalfLoginOfNoAccountIs404(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	typo := fmt.Sprintf("nosuchuser%d-%d", os.Getpid()%1000, userSeq.Add(1))
	res, body := e.doH(http.MethodPost, "/restapi/v1/chat/"+typo+"/login", adminHeader(), nil, "")
	er := requireError(t, res, body, http.StatusNotFound)
	require.Equal(t, 40405, er.Code)
	for _, st := range e.mgr.Streams() {
		require.NotEqual(t, typo, st.User().Localpart(), "no stream left for a missing account")
	}

	// The account's existence is the only difference: once it exists the
	// same login works, and its stream gets ordinary messages but not the
	// probe a second on-behalf login sends.
	user, _ := e.newUser("probed")
	first := e.adminLogin(user)
	ev := e.subscribe("/restapi/v1/chat/"+first.StreamID+"/events", bearerHeader(first.Token))
	e.adminLogin(user)
	other := e.login(e.newUser("sender"))
	e.post(other, http.MethodPost, "/messages/"+bare(first.JID), "after the probe", http.StatusAccepted)
	_, m := ev.next(t, func(m map[string]any) bool { return m["type"] == "chat" || m["type"] == "headline" })
	require.Equal(t, "after the probe", m["body"], "the probe is no event")
}
