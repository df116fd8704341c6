package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/gateway"
)

// fakeStreams holds one fake stream (or none); every other Streams method is the
// nil interface's (a call panics, which the test would show).
type fakeStreams struct {
	unimplementedStreams
	st *fakeStream
}

// unimplementedStreams names Streams for embedding (a field called Streams
// would hide its Streams method).
type unimplementedStreams = Streams

func (f fakeStreams) Domain() string { return "example.com" }

func (f fakeStreams) Stream(id string) (Stream, error) {
	if f.st == nil || id != f.st.ID() {
		return nil, gateway.ErrStreamNotFound
	}
	return f.st, nil
}

// fakeStream implements the identity and the message and room sends; a
// handler that reaches for anything else panics (the recover middleware
// makes that a 500 the test sees).
type fakeStream struct {
	Stream
	sent     []gateway.OutgoingMessage
	roomSent []gateway.OutgoingMessage
	sendErr  error
}

func (f *fakeStream) ID() string                { return "sid-fake" }
func (f *fakeStream) User() jid.JID             { return jid.MustParse("alice@example.com") }
func (f *fakeStream) JID() string               { return "alice@example.com/web" }
func (f *fakeStream) Touch()                    {}
func (f *fakeStream) CheckPassword(string) bool { return false }

func (f *fakeStream) SendMessage(_ context.Context, m gateway.OutgoingMessage) (string, error) {
	f.sent = append(f.sent, m)
	return "id-1", f.sendErr
}

func (f *fakeStream) SendRoomMessage(_ context.Context, m gateway.OutgoingMessage) (string, error) {
	f.roomSent = append(f.roomSent, m)
	return "id-r", f.sendErr
}

// The message and room routes run on a fake stream, without Prosody: the
// handlers depend on small interfaces (messageStream, roomStream), so what
// they do with a request (the message they build, the status and error
// JSON of a failure) is testable on its own.
func TestHandlers_OnAFakeStream(t *testing.T) {
	t.Parallel()
	st := &fakeStream{}
	srv := NewServer(Config{JWTSecret: testSecret, SendsPerSecond: 1000}, fakeStreams{st: st}, nil, nil)
	h := srv.Routes()
	token, _, err := srv.tokens.issue(st.User(), st.ID())
	require.NoError(t, err)
	post := func(path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	rec := post("/restapi/v1/chat/sid-fake/messages/bob@example.com", `{"body":"hi","subject":"s"}`)
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	require.JSONEq(t, `{"id":"id-1"}`, rec.Body.String())
	require.Len(t, st.sent, 1)
	require.Equal(t, "bob@example.com", st.sent[0].To.String())
	require.Equal(t, "hi", st.sent[0].Body)
	require.Equal(t, "s", st.sent[0].Subject)

	st.sendErr = gateway.ErrStreamReconnecting
	rec = post("/restapi/v1/chat/sid-fake/messages/bob@example.com", `{"body":"again"}`)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), `"code":50300`)
	require.NotEmpty(t, rec.Header().Get("Retry-After"))
	st.sendErr = nil

	rec = post("/restapi/v1/chat/sid-fake/rooms/lobby@conference.example.com", `{"body":"all"}`)
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	require.Len(t, st.roomSent, 1)
	require.Equal(t, "lobby@conference.example.com", st.roomSent[0].To.String())

	rec = post("/restapi/v1/chat/sid-other/messages/bob@example.com", `{"body":"x"}`)
	require.Equal(t, http.StatusNotFound, rec.Code, "another stream id is not found, as with a real registry")
	require.Len(t, st.sent, 2, "nothing sent for the unknown stream")
}

// countingForwarder says every stream is owned at addr and counts lookups.
type countingForwarder struct {
	addr    string
	lookups atomic.Int32
}

func (f *countingForwarder) OwnerAddr(context.Context, string) (string, string, error) {
	f.lookups.Add(1)
	return f.addr, "owner", nil
}

// A forwarding node looks a stream's owner up once per ownerTTL, not per
// request, over kept-alive connections; a 404 from the owner (the stream
// moved or ended) drops the cached owner, so the next request asks again.
func TestForward_CachesTheOwnerUntilItAnswers404(t *testing.T) {
	t.Parallel()
	var status atomic.Int32
	status.Store(http.StatusAccepted)
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "cluster-secret-cluster-secret-cluster!", r.Header.Get(clusterSecretHeader))
		w.WriteHeader(int(status.Load()))
	}))
	defer owner.Close()
	fwd := &countingForwarder{addr: owner.Listener.Addr().String()}
	srv := NewServer(Config{JWTSecret: testSecret, Forward: fwd, ClusterSecret: []byte("cluster-secret-cluster-secret-cluster!")},
		fakeStreams{st: &fakeStream{}}, nil, nil)
	h := srv.Routes()
	token, _, err := srv.tokens.issue(jid.MustParse("alice@example.com"), "sid-remote")
	require.NoError(t, err)
	send := func() int {
		req := httptest.NewRequest(http.MethodPost, "/restapi/v1/chat/sid-remote/messages/bob@example.com", strings.NewReader("hi"))
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for range 5 {
		require.Equal(t, http.StatusAccepted, send())
	}
	require.EqualValues(t, 1, fwd.lookups.Load(), "one lookup for five requests within the TTL")
	status.Store(http.StatusNotFound)
	require.Equal(t, http.StatusNotFound, send())
	status.Store(http.StatusAccepted)
	require.Equal(t, http.StatusAccepted, send())
	require.EqualValues(t, 2, fwd.lookups.Load(), "the 404 made the next request look the owner up again")
}
