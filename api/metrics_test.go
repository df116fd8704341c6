package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMetrics_CountWhatHappened(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	user, pass := e.newUser("metrics")
	s := e.login(user, pass)
	e.do(http.MethodPost, "/restapi/v1/chat/"+user+"/login", "", strings.NewReader("wrong"), "text/plain")
	e.subscribe("/restapi/v1/chat/"+s.StreamID+"/events", bearerHeader(s.Token)).next(t, ofType("stream"))
	e.post(s, http.MethodPost, "/messages/"+bare(s.JID), "to myself", http.StatusAccepted)

	res, body := e.doH(http.MethodGet, "/metrics", adminHeader(), nil, "")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	for _, want := range []string{
		`xmppgw_streams{state="online"} 1`,
		`xmppgw_logins_total{result="ok"} 1`,
		`xmppgw_logins_total{result="failed"} 1`,
		`xmppgw_sse_subscribers 1`,
		`xmppgw_http_requests_total{method="POST",route="/restapi/v1/chat/{streamid}/messages/{jid}",status="Accepted"} 1`,
		`xmppgw_stanzas_total{direction="out"}`,
		`xmppgw_events_published_total`,
		`go_goroutines`,
	} {
		require.Contains(t, body, want)
	}
	require.NotContains(t, body, s.StreamID, "no stream ids in labels")

	// The separate listener's handler needs no credentials.
	rec := httptest.NewRecorder()
	e.srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	require.Contains(t, string(b), "xmppgw_streams")
}
