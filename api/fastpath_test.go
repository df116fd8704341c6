package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/xmppgw/xmppgw/fastpath"
)

// fastpathMatrix: the shared matrix env has no fastpath service, so every
// authorized request gets 503; what matters here is that authorization is
// decided first (401 without valid credentials, 404 for someone else's
// stream, 403 for non-admins on admin routes, 400 for admins on summary
// forms). The real behaviour is tested below against Prosody.
var fastpathMatrix = func() map[string]routeCase {
	m := map[string]routeCase{}
	summary := [6]int{401, 503, 503, 401, 401, 400}
	named := [6]int{401, 404, 503, 401, 401, 503}
	for _, r := range []string{"GET /assists", "GET /assists/queues", "POST /assists/{workgroup}", "DELETE /assists/{workgroup}",
		"PUT /assists/{workgroup}/{offerId}", "DELETE /assists/{workgroup}/{offerId}", "POST /offer/{offerId}", "DELETE /offer/{offerId}"} {
		method, path, _ := strings.Cut(r, " ")
		m[method+" /restapi/v1/chat"+path] = routeCase{path: "/restapi/v1/chat" + fpFill.Replace(path), want: summary}
		m[method+" /restapi/v1/chat/{streamid}"+path] = routeCase{path: "/restapi/v1/chat/{streamid}" + fpFill.Replace(path), want: named}
	}
	any503 := [6]int{401, 503, 503, 401, 401, 503}
	m["POST /restapi/v1/ask"] = routeCase{body: `{"workgroup":"wg","question":"q","emailAddress":"a@b"}`, ct: "application/json", want: any503}
	m["GET /restapi/v1/ask/{ticket}"] = routeCase{path: "/restapi/v1/ask/t1", want: any503}
	m["DELETE /restapi/v1/ask/{ticket}"] = routeCase{path: "/restapi/v1/ask/t1", want: any503}
	m["GET /restapi/v1/ask/{ticket}/transcript"] = routeCase{path: "/restapi/v1/ask/t1/transcript", want: any503}
	admin := [6]int{401, 403, 403, 401, 401, 503}
	m["GET /restapi/v1/admin/workgroups"] = routeCase{want: admin}
	m["POST /restapi/v1/admin/workgroups"] = routeCase{body: `{"name":"wg"}`, ct: "application/json", want: admin}
	m["GET /restapi/v1/admin/workgroups/{workgroup}"] = routeCase{path: "/restapi/v1/admin/workgroups/wg", want: admin}
	m["PUT /restapi/v1/admin/workgroups/{workgroup}"] = routeCase{path: "/restapi/v1/admin/workgroups/wg", body: `{}`, ct: "application/json", want: admin}
	m["DELETE /restapi/v1/admin/workgroups/{workgroup}"] = routeCase{path: "/restapi/v1/admin/workgroups/wg", want: admin}
	return m
}()

var fpFill = strings.NewReplacer("{workgroup}", "wg", "{offerId}", "o1")

func init() {
	for k, v := range fastpathMatrix {
		matrix[k] = v
	}
}

// newFastpathEnv is a test env with a running fastpath service (fast ticks,
// a short skip after reject/timeout so pass-on is quick to observe).
func newFastpathEnv(t *testing.T) *testEnv {
	t.Helper()
	svc, err := fastpath.New(fastpath.Options{Tick: 50 * time.Millisecond, RetryAfter: time.Second}, nil)
	require.NoError(t, err)
	svc.Start()
	t.Cleanup(svc.Close)
	e := newEnv(t, envOptions{api: Config{Fastpath: svc}})
	// As cmd/xmppgw wires it: the queues reach the streams through the hooks.
	svc.Bind(fastpath.StreamHooks(func(id string) (fastpath.Stream, bool) {
		st, err := e.mgr.Stream(id)
		if err != nil {
			return nil, false
		}
		return st, true
	}))
	return e
}

// fpActor is a logged-in user with their event stream.
type fpActor struct {
	session
	bare string
	ev   *sseConn
}

func (e *testEnv) fpActor(prefix string) fpActor {
	e.t.Helper()
	s := e.login(e.newUser(prefix))
	return fpActor{session: s, bare: bare(s.JID), ev: e.subscribe("/restapi/v1/chat/"+s.StreamID+"/events", bearerHeader(s.Token))}
}

// workgroup creates one over the admin API and returns its name.
func (e *testEnv) workgroup(maxChats, timeout int, members ...fpActor) string {
	e.t.Helper()
	name := "wg" + strings.ReplaceAll(members[0].user, "-", "")
	jids := []string{}
	for _, m := range members {
		jids = append(jids, m.bare)
	}
	res, body := e.doH(http.MethodPost, "/restapi/v1/admin/workgroups", adminHeader(),
		jsonBody(map[string]any{"name": name, "members": jids, "max_chats": maxChats, "offer_timeout": timeout, "open": true}), "application/json")
	require.Equal(e.t, http.StatusCreated, res.StatusCode, body)
	for _, m := range members {
		e.post(m.session, http.MethodPost, "/assists/"+name, nil, http.StatusNoContent)
	}
	return name
}

func (e *testEnv) ask(u fpActor, wg, question string) fastpath.TicketInfo {
	e.t.Helper()
	res, body := e.do(http.MethodPost, "/restapi/v1/ask", u.Token,
		jsonBody(map[string]any{"workgroup": wg, "question": question, "emailAddress": u.user + "@mail.example", "product": "pump"}), "application/json")
	require.Equal(e.t, http.StatusAccepted, res.StatusCode, body)
	var ti fastpath.TicketInfo
	require.NoError(e.t, json.Unmarshal([]byte(body), &ti))
	require.NotEmpty(e.t, ti.Ticket)
	return ti
}

func offerFrom(user string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["type"] == "offerReceived" && m["from"] == user }
}

func TestFastpath_RoundRobinAcceptChatAndCapacity(t *testing.T) {
	t.Parallel()
	e := newFastpathEnv(t)
	a, b := e.fpActor("agenta"), e.fpActor("agentb")
	u1, u2, u3 := e.fpActor("user1"), e.fpActor("user2"), e.fpActor("user3")
	wg := e.workgroup(1, 30, a, b)

	// Round robin: u1 → a, u2 → b, u3 waits (both at max chats 1).
	t1 := e.ask(u1, wg, "how do I dose?")
	require.Equal(t, 1, t1.Position)
	require.Equal(t, fastpath.StateQueued, t1.State)
	_, o1 := a.ev.next(t, offerFrom(u1.bare))
	require.Equal(t, wg, o1["workgroup"])
	require.Equal(t, map[string]any{"question": "how do I dose?", "email": u1.user + "@mail.example", "username": u1.bare, "product": "pump"}, o1["metaData"])
	_, uq := u1.ev.next(t, ofType("update-queue"))
	require.Equal(t, float64(1), uq["position"])
	t2 := e.ask(u2, wg, "second")
	b.ev.next(t, offerFrom(u2.bare))
	t3 := e.ask(u3, wg, "third")
	require.Equal(t, 3, t3.Position)
	_, uq = u3.ev.next(t, ofType("update-queue"))
	require.Equal(t, float64(3), uq["position"])

	var queues QueueList
	require.NoError(t, json.Unmarshal([]byte(e.post(a.session, http.MethodGet, "/assists/queues", nil, http.StatusOK)), &queues))
	require.Len(t, queues.Queue, 1)
	require.Len(t, queues.Queue[0].Users, 3)
	require.Equal(t, "active", queues.Queue[0].Status, "every agent is busy")
	require.Equal(t, 1, queues.Queue[0].CurrentChats)
	require.Contains(t, e.post(a.session, http.MethodGet, "/assists", nil, http.StatusOK), `"workgroup":["`+wg+`"]`)

	// a accepts (the README form, summary route): room made, both told.
	res, body := e.do(http.MethodPut, "/restapi/v1/chat/assists/"+wg+"/"+o1["id"].(string), a.Token, nil, "")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	var acc AcceptResponse
	require.NoError(t, json.Unmarshal([]byte(body), &acc))
	require.Equal(t, t1.Ticket, acc.Ticket)
	require.True(t, strings.HasPrefix(acc.Room, "wg-") && strings.HasSuffix(acc.Room, "@conference."+e.xmpp.Domain), acc.Room)
	_, inv := a.ev.next(t, ofType("invitationReceived"))
	require.Equal(t, acc.Room, inv["room"])
	require.Equal(t, wg, inv["inviter"])
	require.Equal(t, "how do I dose?", inv["reason"])
	// The workgroup's offer and the room's own XEP-0045 invitation come from
	// different senders: either may arrive first.
	got := u1.ev.nextEach(t, ofType("offer"), ofType("invitation"))
	off, xinv := got[0], got[1]
	require.Equal(t, acc.Room, off["mucRoom"])
	require.Equal(t, acc.Room, off["from"])
	require.Equal(t, acc.Room, xinv["room"])

	// Positions move up for those still waiting.
	_, uq = u3.ev.next(t, ofType("update-queue"))
	require.Equal(t, float64(2), uq["position"])
	ti := e.ticket(u1, t1.Ticket, http.StatusOK)
	require.Equal(t, fastpath.StateChatting, ti.State)
	require.Equal(t, acc.Room, ti.Room)

	// Both chat in the members-only room.
	e.post(u1.session, http.MethodPut, "/rooms/"+acc.Room, map[string]any{"nick": "visitor"}, http.StatusNoContent)
	e.post(u1.session, http.MethodPost, "/rooms/"+acc.Room, "hello expert", http.StatusAccepted)
	a.ev.next(t, func(m map[string]any) bool { return m["type"] == "groupchat" && m["body"] == "hello expert" })
	e.post(a.session, http.MethodPost, "/rooms/"+acc.Room, "hello visitor", http.StatusAccepted)
	u1.ev.next(t, func(m map[string]any) bool { return m["type"] == "groupchat" && m["body"] == "hello visitor" })
	// Outsiders cannot enter.
	e.post(u3.session, http.MethodPut, "/rooms/"+acc.Room, map[string]any{"nick": "nosy"}, http.StatusForbidden)

	// The transcript is the room's archive, for the ticket's owner only.
	require.Eventually(t, func() bool {
		res, body := e.do(http.MethodGet, "/restapi/v1/ask/"+t1.Ticket+"/transcript", u1.Token, nil, "")
		return res.StatusCode == http.StatusOK && strings.Contains(body, "hello expert") && strings.Contains(body, "hello visitor")
	}, 10*time.Second, 100*time.Millisecond)
	res, body = e.do(http.MethodGet, "/restapi/v1/ask/"+t1.Ticket+"/transcript", u2.Token, nil, "")
	requireError(t, res, body, http.StatusNotFound)
	res, body = e.do(http.MethodGet, "/restapi/v1/ask/"+t3.Ticket+"/transcript", u3.Token, nil, "")
	require.Equal(t, 40923, requireError(t, res, body, http.StatusConflict).Code)

	// Max chats: a is full until u1 ends the conversation; then u3 goes to a.
	res, body = e.do(http.MethodDelete, "/restapi/v1/ask/"+t1.Ticket, u1.Token, nil, "")
	require.Equal(t, http.StatusNoContent, res.StatusCode, body)
	a.ev.next(t, offerFrom(u3.bare)) // published before the room is left
	a.ev.next(t, func(m map[string]any) bool {
		return m["type"] == "occupant" && m["nick"] == "visitor" && m["available"] == false
	})
	require.Equal(t, fastpath.StateEnded, e.ticket(u1, t1.Ticket, http.StatusOK).State)
	require.Equal(t, 1, e.ticket(u2, t2.Ticket, http.StatusOK).Position)
}

func TestFastpath_RejectTimeoutDndAndDisconnect(t *testing.T) {
	t.Parallel()
	e := newFastpathEnv(t)
	a, b := e.fpActor("agenta"), e.fpActor("agentb")
	u := e.fpActor("user")
	wg := e.workgroup(1, 2, a, b)
	e.ask(u, wg, "help")

	// Reject (the ancestor's form) passes the request on to b.
	_, o1 := a.ev.next(t, offerFrom(u.bare))
	e.post(a.session, http.MethodDelete, "/offer/"+o1["id"].(string), nil, http.StatusNoContent)
	_, o2 := b.ev.next(t, offerFrom(u.bare))
	// Someone else's offer is not found.
	e.post(a.session, http.MethodPost, "/offer/"+o2["id"].(string), nil, http.StatusNotFound)

	// b does not answer: revoked after 2 s, and a gets it again.
	_, rv := b.ev.next(t, ofType("offerRevoked"))
	require.Equal(t, o2["id"], rv["id"])
	require.Equal(t, "timeout", rv["reason"])
	_, o3 := a.ev.next(t, offerFrom(u.bare))

	// a goes dnd mid-offer: revoked, b (after its skip) gets it.
	e.post(a.session, http.MethodPost, "/presence?show=dnd", nil, http.StatusNoContent)
	_, rv = a.ev.next(t, ofType("offerRevoked"))
	require.Equal(t, o3["id"], rv["id"])
	require.Equal(t, "agent unavailable", rv["reason"])
	_, o4 := b.ev.next(t, offerFrom(u.bare))
	// Accepting a revoked offer fails.
	e.post(a.session, http.MethodPost, "/offer/"+o3["id"].(string), nil, http.StatusNotFound)

	// b disconnects: the offer is re-routed once a is available again; the
	// queue kept the request all along.
	e.post(b.session, http.MethodPost, "/logoff", nil, http.StatusNoContent)
	e.post(a.session, http.MethodPost, "/presence?show=chat", nil, http.StatusNoContent)
	_, o5 := a.ev.next(t, offerFrom(u.bare))
	require.NotEqual(t, o4["id"], o5["id"])
	e.post(a.session, http.MethodPut, "/assists/"+wg+"/"+o5["id"].(string), nil, http.StatusOK)
	u.ev.next(t, ofType("offer"))
}

func TestFastpath_TicketsAreTheOwnersOnly(t *testing.T) {
	t.Parallel()
	e := newFastpathEnv(t)
	a := e.fpActor("agent")
	u, other := e.fpActor("user"), e.fpActor("other")
	wg := e.workgroup(1, 30, a)
	tk := e.ask(u, wg, "private question")
	a.ev.next(t, offerFrom(u.bare))

	// Another user: 404, exactly like a missing ticket, for every verb.
	e.ticket(other, tk.Ticket, http.StatusNotFound)
	e.ticket(other, "no-such-ticket", http.StatusNotFound)
	res, body := e.do(http.MethodDelete, "/restapi/v1/ask/"+tk.Ticket, other.Token, nil, "")
	require.Equal(t, 40421, requireError(t, res, body, http.StatusNotFound).Code)
	res, body = e.do(http.MethodGet, "/restapi/v1/ask/"+tk.Ticket, "", nil, "")
	requireError(t, res, body, http.StatusUnauthorized)
	// Admins see it.
	res, body = e.doH(http.MethodGet, "/restapi/v1/ask/"+tk.Ticket, adminHeader(), nil, "")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	require.Contains(t, body, `"state":"queued"`)

	// The owner cancels while queued: the agent's offer is revoked.
	res, body = e.do(http.MethodDelete, "/restapi/v1/ask/"+tk.Ticket, u.Token, nil, "")
	require.Equal(t, http.StatusNoContent, res.StatusCode, body)
	_, rv := a.ev.next(t, ofType("offerRevoked"))
	require.Equal(t, "user left the queue", rv["reason"])
	require.Equal(t, fastpath.StateEnded, e.ticket(u, tk.Ticket, http.StatusOK).State)

	// Closed, memberless and unknown workgroups; bad requests.
	res, body = e.doH(http.MethodPut, "/restapi/v1/admin/workgroups/"+wg, adminHeader(),
		jsonBody(map[string]any{"members": []string{a.bare}, "open": false}), "application/json")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	askStatus := func(body map[string]any) (*http.Response, string) {
		return e.do(http.MethodPost, "/restapi/v1/ask", u.Token, jsonBody(body), "application/json")
	}
	res, body = askStatus(map[string]any{"workgroup": wg, "question": "q", "emailAddress": "x@y"})
	require.Equal(t, 40921, requireError(t, res, body, http.StatusConflict).Code)
	res, body = e.doH(http.MethodPost, "/restapi/v1/admin/workgroups", adminHeader(),
		jsonBody(map[string]any{"name": wg + "-empty", "open": true}), "application/json")
	require.Equal(t, http.StatusCreated, res.StatusCode, body)
	res, body = askStatus(map[string]any{"workgroup": wg + "-empty", "question": "q", "emailAddress": "x@y"})
	require.Equal(t, 40922, requireError(t, res, body, http.StatusConflict).Code)
	res, body = askStatus(map[string]any{"workgroup": "nope", "question": "q", "emailAddress": "x@y"})
	require.Equal(t, 40420, requireError(t, res, body, http.StatusNotFound).Code)
	res, body = askStatus(map[string]any{"workgroup": wg, "question": "q"})
	requireError(t, res, body, http.StatusBadRequest)
	res, body = askStatus(map[string]any{"workgroup": wg, "question": "q", "emailAddress": "x@y", "n": 1})
	requireError(t, res, body, http.StatusBadRequest)

	// Admin CRUD round trip; non-members cannot go online.
	res, body = e.doH(http.MethodGet, "/restapi/v1/admin/workgroups", adminHeader(), nil, "")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	require.Contains(t, body, `"name":"`+wg+`-empty"`)
	e.post(other.session, http.MethodPost, "/assists/"+wg, nil, http.StatusForbidden)
	e.post(other.session, http.MethodDelete, "/assists/"+wg, nil, http.StatusNotFound)
	res, body = e.doH(http.MethodDelete, "/restapi/v1/admin/workgroups/"+wg+"-empty", adminHeader(), nil, "")
	require.Equal(t, http.StatusNoContent, res.StatusCode, body)
	res, body = e.doH(http.MethodGet, "/restapi/v1/admin/workgroups/"+wg+"-empty", adminHeader(), nil, "")
	requireError(t, res, body, http.StatusNotFound)
	res, body = e.doH(http.MethodPost, "/restapi/v1/admin/workgroups", adminHeader(),
		jsonBody(map[string]any{"name": "x", "members": []string{"not a jid@"}}), "application/json")
	requireError(t, res, body, http.StatusBadRequest)
}

func (e *testEnv) ticket(u fpActor, id string, want int) fastpath.TicketInfo {
	e.t.Helper()
	res, body := e.do(http.MethodGet, "/restapi/v1/ask/"+id, u.Token, nil, "")
	require.Equal(e.t, want, res.StatusCode, body)
	var ti fastpath.TicketInfo
	if want == http.StatusOK {
		require.NoError(e.t, json.Unmarshal([]byte(body), &ti))
	}
	return ti
}

// TestFastpath_WorkgroupOpenByDefault: a workgroup created over the admin
// API without "open" takes asks (it used to answer every one 409 "workgroup
// is closed"); "open": false still closes it, also on PUT; the strict JSON
// rules hold for the workgroup body too.
func TestFastpath_WorkgroupOpenByDefault(t *testing.T) {
	t.Parallel()
	e := newFastpathEnv(t)
	agent, user := e.fpActor("wgo"), e.fpActor("wgu")
	name := "wgopen" + strings.ReplaceAll(agent.user, "-", "")
	create := func(body map[string]any, want int) string {
		t.Helper()
		res, out := e.doH(http.MethodPost, "/restapi/v1/admin/workgroups", adminHeader(), jsonBody(body), "application/json")
		require.Equal(t, want, res.StatusCode, out)
		return out
	}
	out := create(map[string]any{"name": name, "members": []string{agent.bare}}, http.StatusCreated)
	var wg fastpath.Workgroup
	require.NoError(t, json.Unmarshal([]byte(out), &wg))
	require.True(t, wg.Open, out)
	e.post(agent.session, http.MethodPost, "/assists/"+name, nil, http.StatusNoContent)
	e.ask(user, name, "does it take asks without \"open\"?")

	closed := name + "c"
	create(map[string]any{"name": closed, "members": []string{agent.bare}, "open": false}, http.StatusCreated)
	res, body := e.do(http.MethodPost, "/restapi/v1/ask", user.Token,
		jsonBody(map[string]any{"workgroup": closed, "question": "q", "emailAddress": user.user + "@mail.example"}), "application/json")
	require.Contains(t, requireError(t, res, body, http.StatusConflict).Error, "closed")

	res, body = e.doH(http.MethodPost, "/restapi/v1/admin/workgroups", adminHeader(),
		strings.NewReader(`{"name":"wgx","members":[],"Open":false}`), "application/json")
	requireStrictJSONError(t, res, body, []string{`field "Open"`, `"open"`})
	res, body = e.doH(http.MethodPost, "/restapi/v1/admin/workgroups", adminHeader(),
		strings.NewReader(`{"name":"wgx","members":[],"open":"yes"}`), "application/json")
	requireStrictJSONError(t, res, body, []string{`field "open"`, "true or false"})
}

// steppedDownQueues is a FastpathCluster whose node leads when a call
// starts and has stepped down by the time the call's change is persisted.
type steppedDownQueues struct{ svc *fastpath.Service }

func (q steppedDownQueues) Local() *fastpath.Service                   { return q.svc }
func (q steppedDownQueues) LeaderAddr(context.Context) (string, error) { return "", nil }
func (q steppedDownQueues) Persist(context.Context, *fastpath.Service) error {
	return errors.New("cluster: this node no longer runs the workgroup queues")
}

// A call whose change cannot be kept because the node stopped leading
// answers 503 with Retry-After, the usual error body, not 200.
func TestFastpath_ChangeNotKeptByTheClusterIs503(t *testing.T) {
	t.Parallel()
	svc, err := fastpath.New(fastpath.Options{}, nil)
	require.NoError(t, err)
	t.Cleanup(svc.Close)
	e := newEnv(t, envOptions{api: Config{FastpathCluster: steppedDownQueues{svc: svc}}})
	res, body := e.doH(http.MethodPost, "/restapi/v1/admin/workgroups", adminHeader(),
		jsonBody(map[string]any{"name": "wglost", "members": []string{}}), "application/json")
	er := requireError(t, res, body, http.StatusServiceUnavailable)
	require.Equal(t, 50305, er.Code)
	require.Equal(t, "2", res.Header.Get("Retry-After"))
	require.Contains(t, er.Error, "not saved")
}
