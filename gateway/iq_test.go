package gateway

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"mellium.im/xmpp/jid"
)

// A fresh stream asks for carbons and the roster in one write, so the
// server reads both at once and neither waits for the other's answer.
func TestAfterConnect_PipelinesCarbonsAndRoster(t *testing.T) {
	_, fc, _ := scriptedStream(t, nil)
	require.Eventually(t, func() bool {
		fc.mu.Lock()
		defer fc.mu.Unlock()
		for _, b := range fc.batches {
			if len(b) == 2 && b[0] == "enable" && b[1] == "query" {
				return true
			}
		}
		return false
	}, 5*time.Second, 10*time.Millisecond, "carbons enable and roster query in one write")
}

// requestAll reports each answer on its own: an error for one request
// does not hide the other's result.
func TestRequestAll_ReportsEachAnswer(t *testing.T) {
	st, _, _ := scriptedStream(t, func(iq xmlNode) *xmlNode {
		if iq.child("jabber:iq:version", "query") != nil {
			return parseXML(t, `<iq type="error"><error type="cancel"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>`)
		}
		return nil
	})
	errs := st.requestAll(context.Background(),
		iqRequest{Type: "get", To: "example.com", Payload: elem("jabber:iq:version", "query")},
		iqRequest{Type: "get", Payload: rosterQuery{}})
	require.Len(t, errs, 2)
	var iqErr *IQError
	require.ErrorAs(t, errs[0], &iqErr)
	require.Equal(t, "service-unavailable", iqErr.Condition)
	require.NoError(t, errs[1])
	// The stream's own after-connect requests may still be in flight;
	// they are answered too, so once they are, no waiter may remain.
	require.Eventually(t, func() bool {
		st.iqs.mu.Lock()
		defer st.iqs.mu.Unlock()
		return len(st.iqs.pending) == 0
	}, 5*time.Second, 10*time.Millisecond, "a waiter left behind")
}

// The per-user stream limit counts open streams without scanning them all,
// and a stream that ends frees its place.
func TestLogin_PerUserLimitCountsOpenStreams(t *testing.T) {
	m, err := NewManager(Config{Addr: "127.0.0.1:1", Domain: "example.com", TLS: TLSNone, MaxStreamsPerUser: 2}, &recordingPub{}, nil)
	require.NoError(t, err)
	m.dialer = func(_ context.Context, user jid.JID, _ credentials, resource string) (conn, error) {
		return newScriptedConn(user.String()+"/"+resource, nil), nil
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, m.Close(ctx))
	})
	ctx := context.Background()
	a1, err := m.Login(ctx, "alice", "pw", "")
	require.NoError(t, err)
	_, err = m.Login(ctx, "alice", "pw", "")
	require.NoError(t, err)
	_, err = m.Login(ctx, "alice", "pw", "")
	require.True(t, errors.Is(err, ErrTooManyStreams), "third stream of alice: %v", err)
	_, err = m.Login(ctx, "bob", "pw", "")
	require.NoError(t, err, "another user is not limited by alice's streams")

	require.NoError(t, m.Logoff(ctx, a1.ID()))
	require.Eventually(t, func() bool {
		s, err := m.Login(ctx, "alice", "pw", "")
		return err == nil && s != nil
	}, 5*time.Second, 20*time.Millisecond, "a logged-off stream frees its place")
}
