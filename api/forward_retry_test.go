package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

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
	newOwner := NewServer(Config{JWTSecret: testSecret, SendsPerSecond: 1000}, fakeStreams{st: st}, nil, nil)
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
	send := func(path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	rec := send("/restapi/v1/chat/sid-fake/messages/bob@example.com", `{"body":"hi"}`)
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	require.Len(t, st.sent, 1, "the new owner sent it")
	require.Equal(t, "hi", st.sent[0].Body, "with the body the old owner had already read")
	require.EqualValues(t, 1, oldHits.Load())
	require.Equal(t, 2, owners.calls, "looked up again after the old owner's answer")
	require.Empty(t, rec.Header().Get(clusterAbsentHeader))

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
