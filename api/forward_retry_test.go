package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// routeLog is a slog.Handler keeping the "route" of every record.
type routeLog struct {
	mu     sync.Mutex
	routes []string
}

func (l *routeLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *routeLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *routeLog) WithGroup(string) slog.Handler            { return l }
func (l *routeLog) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "route" {
			l.mu.Lock()
			l.routes = append(l.routes, a.Value.String())
			l.mu.Unlock()
		}
		return true
	})
	return nil
}

func (l *routeLog) seen() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.routes)
}

// scriptedOwners answers OwnerAddr from a list: the i-th lookup gets
// addrs[i], the last one from then on.
type scriptedOwners struct {
	mu    sync.Mutex
	addrs []string
	calls int
}

func (o *scriptedOwners) OwnerAddr(_ context.Context, _ string) (string, string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	a := o.addrs[min(o.calls, len(o.addrs)-1)]
	o.calls++
	return a, "node", nil
}

// A request forwarded to a node the stream has just left (the owner cache
// is a second old, the stream was taken over or drained meanwhile) is sent
// once more to the new owner, body and all, instead of answering the old
// owner's 404; when the cluster names no other node, the 404 is the answer,
// and a resource's 404 from the real owner is never retried.
func TestForwarding_RetriesOnceAtTheNewOwner(t *testing.T) {
	t.Parallel()
	secret := []byte(strings.Repeat("r", 32))
	st := &fakeStream{}
	routes := &routeLog{}
	newOwner := NewServer(Config{JWTSecret: testSecret, SendsPerSecond: 1000}, fakeStreams{st: st}, nil, slog.New(routes))
	internalNew := httptest.NewServer(newOwner.ClusterRoutes(secret))
	defer internalNew.Close()
	var oldHits atomic.Int32
	oldOwner := NewServer(Config{JWTSecret: testSecret}, fakeStreams{}, nil, nil)
	oldRoutes := oldOwner.ClusterRoutes(secret)
	internalOld := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		oldHits.Add(1)
		oldRoutes.ServeHTTP(w, r)
	}))
	defer internalOld.Close()
	addr := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

	owners := &scriptedOwners{addrs: []string{addr(internalOld), addr(internalNew)}}
	front := NewServer(Config{JWTSecret: testSecret, Forward: owners, ClusterSecret: secret}, fakeStreams{}, nil, nil)
	h := front.Routes()
	token, _, err := front.tokens.issue(st.User(), st.ID())
	require.NoError(t, err)
	send := func(path, body string) *httptest.ResponseRecorder { return postJSON(h, token, path, body) }

	rec := send("/restapi/v1/chat/sid-fake/messages/bob@example.com", `{"body":"hi"}`)
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	require.Len(t, st.sent, 1, "the new owner sent it")
	require.Equal(t, "hi", st.sent[0].Body, "with the body the old owner had already read")
	require.EqualValues(t, 1, oldHits.Load())
	require.Equal(t, 2, owners.calls, "looked up again after the old owner's answer")
	require.Empty(t, rec.Header().Get(clusterAbsentHeader))
	require.Eventually(t, func() bool { return len(routes.seen()) > 0 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, []string{"/restapi/v1/chat/{streamid}/messages/{jid}"}, routes.seen(),
		"the owner names a forwarded request's route as the public listener does (logs, metrics, audit)")

	// The cluster still names the old owner: its 404 is the answer, once.
	owners.mu.Lock()
	owners.addrs, owners.calls = []string{addr(internalOld)}, 0
	owners.mu.Unlock()
	front.fwd.owners.Purge() // the retry cached the new owner
	rec = send("/restapi/v1/chat/sid-fake/messages/bob@example.com", `{"body":"again"}`)
	require.Equal(t, http.StatusNotFound, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), `"code":40401`)
	require.Empty(t, rec.Header().Get(clusterAbsentHeader), "an internal header never reaches the client")
	require.EqualValues(t, 2, oldHits.Load())
	require.Len(t, st.sent, 1)

	// A 404 the owner gives about something of the stream (a contact, a
	// room), not about the stream, carries no mark: no second try.
	internalRes := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"code":40404,"http":404,"error":"no such room","request_id":"x"}`))
	}))
	defer internalRes.Close()
	owners.mu.Lock()
	owners.addrs, owners.calls = []string{addr(internalRes), addr(internalNew)}, 0
	owners.mu.Unlock()
	front.fwd.owners.Purge()
	rec = send("/restapi/v1/chat/sid-fake/messages/bob@example.com", `{"body":"third"}`)
	require.Equal(t, http.StatusNotFound, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), "no such room")
	require.Equal(t, 1, owners.calls, "not looked up again")
	require.Len(t, st.sent, 1)
}

// The owner marks only its stream-absent 404 with the internal header,
// and the forwarding node never passes that header on to a client, whatever
// the status: here the node the stream left answers an ask with 503 (no
// workgroups there) before it ever looks for the stream.
func TestForwarding_StreamAbsentMarkOnlyOnTheStreamsOwn404(t *testing.T) {
	t.Parallel()
	secret := []byte(strings.Repeat("r", 32))
	st := &fakeStream{}
	oldOwner := NewServer(Config{JWTSecret: testSecret}, fakeStreams{}, nil, nil)
	oldRoutes := oldOwner.ClusterRoutes(secret)
	internalOld := httptest.NewServer(oldRoutes)
	defer internalOld.Close()
	owners := &scriptedOwners{addrs: []string{strings.TrimPrefix(internalOld.URL, "http://")}}
	front := NewServer(Config{JWTSecret: testSecret, Forward: owners, ClusterSecret: secret}, fakeStreams{}, nil, nil)
	token, _, err := front.tokens.issue(st.User(), st.ID())
	require.NoError(t, err)

	rec := postJSON(front.Routes(), token, "/restapi/v1/ask", `{"workgroup":"wg","question":"q","emailAddress":"a@b"}`)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), `"code":50304`)
	require.Empty(t, rec.Header().Get(clusterAbsentHeader), "an internal header never reaches the client")
	require.Equal(t, 1, owners.calls, "forwarded to the old owner")

	direct := func(path string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(`{"body":"hi","workgroup":"wg","question":"q","emailAddress":"a@b"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set(clusterSecretHeader, string(secret))
		rec := httptest.NewRecorder()
		oldRoutes.ServeHTTP(rec, req)
		return rec
	}
	rec = direct("/restapi/v1/ask")
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	require.Empty(t, rec.Header().Get(clusterAbsentHeader), "a 503 is not the stream-absent 404")
	rec = direct("/restapi/v1/chat/sid-fake/messages/bob@example.com")
	require.Equal(t, http.StatusNotFound, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), `"code":40401`)
	require.Equal(t, "1", rec.Header().Get(clusterAbsentHeader), "the stream-absent 404 is marked")
}
