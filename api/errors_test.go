package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/stretchr/testify/require"

	"github.com/xmppgw/xmppgw/gateway"
	"github.com/xmppgw/xmppgw/sse"
)

func TestToAPIError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    error
		code   int
		status int
	}{
		{"table value", errTokenExpired, 40102, 401},
		{"wrapped table value", fmt.Errorf("ctx: %w", errInvalidToken.wrap("x")), 40101, 401},
		{"body too large", &http.MaxBytesError{Limit: 10}, 41300, 413},
		{"stream not found", gateway.ErrStreamNotFound, 40401, 404},
		{"stream closed", fmt.Errorf("x: %w", gateway.ErrStreamClosed), 40401, 404},
		{"auth failed", fmt.Errorf("%w: auth failure: not-authorized", gateway.ErrAuthFailed), 40104, 401},
		{"invalid address", fmt.Errorf("%w: JID", gateway.ErrInvalidAddress), 40002, 400},
		{"invalid input", fmt.Errorf("%w: show", gateway.ErrInvalidInput), 40003, 400},
		{"stanza too large", gateway.ErrTooLarge, 41300, 413},
		{"xmpp timeout", gateway.ErrServerTimeout, 50400, 504},
		{"context deadline", context.DeadlineExceeded, 50400, 504},
		{"xmpp unreachable", gateway.ErrServerUnreachable, 50200, 502},
		{"reconnecting", gateway.ErrStreamReconnecting, 50300, 503},
		{"connection lost while waiting", gateway.ErrConnectionLost, 50310, 503},
		{"answer skipped", fmt.Errorf("%w: nested deeper than 64 levels", gateway.ErrStanzaSkipped), 50201, 502},
		{"shutting down", gateway.ErrClosed, 50301, 503},
		{"no topic", sse.ErrTopicNotFound, 40401, 404},
		{"too many subscribers", sse.ErrTooManySubscribers, 42903, 429},
		{"too many streams", gateway.ErrTooManyStreams, 42902, 429},
		{"capacity", gateway.ErrCapacity, 50303, 503},
		{"on behalf disabled", gateway.ErrOnBehalfDisabled, 50304, 503},
		{"on-behalf login of no account", fmt.Errorf("%w: typo@localhost", gateway.ErrNoSuchAccount), 40405, 404},
		{"anything else", errors.New("boom: secret detail"), 50000, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ae := toAPIError(tt.err)
			require.Equal(t, tt.code, ae.code)
			require.Equal(t, tt.status, ae.status)
		})
	}
}

func TestWriteError_ShapeAndNoInternalDetail(t *testing.T) {
	t.Parallel()
	s := NewServer(Config{JWTSecret: testSecret}, nil, nil, nil)
	h := middleware.RequestID(s.handle(func(http.ResponseWriter, *http.Request) error {
		return errors.New("database password is hunter2")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
	require.Equal(t, http.StatusInternalServerError, rec.Code)
	var er ErrorResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &er))
	require.Equal(t, ErrorResponse{Code: 50000, HTTP: 500, Error: "internal error", RequestID: er.RequestID}, er)
	require.NotEmpty(t, er.RequestID)
	require.NotContains(t, rec.Body.String(), "hunter2")
}

func TestRecoverPanics_JSON500(t *testing.T) {
	t.Parallel()
	s := NewServer(Config{JWTSecret: testSecret}, nil, nil, nil)
	h := middleware.RequestID(s.recoverPanics(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("kaboom with secret")
	})))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
	require.Equal(t, http.StatusInternalServerError, rec.Code)
	var er ErrorResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &er))
	require.Equal(t, ErrorResponse{Code: 50000, HTTP: 500, Error: "internal error", RequestID: er.RequestID}, er)
	require.NotEmpty(t, er.RequestID)
	require.NotContains(t, rec.Body.String(), "kaboom")
}

func TestTokens_IssueVerifyRevoke(t *testing.T) {
	t.Parallel()
	tk := newTokens(testSecret, tokenIssuer, DefaultTokenTTL)
	user, err := gateway.UserJID("alice", "localhost")
	require.NoError(t, err)
	raw, exp, err := tk.issue(user, "sid-1")
	require.NoError(t, err)
	require.WithinDuration(t, exp, exp.Truncate(1e9), 0)
	c, err := tk.verify(raw)
	require.NoError(t, err)
	require.Equal(t, "alice@localhost", c.Subject)
	require.Equal(t, "sid-1", c.SID)
	tk.revoke(c)
	_, err = tk.verify(raw)
	require.ErrorIs(t, err, errTokenRevoked)
	other := newTokens(testSecret, "someone-else", DefaultTokenTTL)
	raw2, _, err := other.issue(user, "sid-2")
	require.NoError(t, err)
	_, err = tk.verify(raw2)
	require.ErrorIs(t, err, errInvalidToken, "issuer enforced")
	_, err = tk.verify("not.a.token")
	require.ErrorIs(t, err, errInvalidToken)
}

func TestCORS_PreflightAndHeaders(t *testing.T) {
	t.Parallel()
	s := NewServer(Config{JWTSecret: testSecret, CORSOrigins: []string{"http://app.example"}}, nil, nil, nil)
	h := s.Routes()
	req := httptest.NewRequest(http.MethodOptions, "/restapi/v1/chat/sid/messages/bob@localhost", nil)
	req.Header.Set("Origin", "http://app.example")
	req.Header.Set("Access-Control-Request-Method", http.MethodPost)
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "http://app.example", rec.Header().Get("Access-Control-Allow-Origin"))
	require.Contains(t, rec.Header().Get("Access-Control-Allow-Methods"), http.MethodPost)
	require.Contains(t, strings.ToLower(rec.Header().Get("Access-Control-Allow-Headers")), "authorization")

	req = httptest.NewRequest(http.MethodOptions, "/restapi/v1/chat/sid/messages/bob@localhost", nil)
	req.Header.Set("Origin", "http://evil.example")
	req.Header.Set("Access-Control-Request-Method", http.MethodPost)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"), "unlisted origins get no CORS grant")

	req = httptest.NewRequest(http.MethodGet, "/healthz", nil)
	req.Header.Set("Origin", "http://app.example")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "http://app.example", rec.Header().Get("Access-Control-Allow-Origin"))
	require.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
	require.Equal(t, "default-src 'none'; frame-ancestors 'none'", rec.Header().Get("Content-Security-Policy"))
	require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
	require.Equal(t, "DENY", rec.Header().Get("X-Frame-Options"))
	require.Contains(t, rec.Header().Get("Access-Control-Expose-Headers"), "Retry-After", "pages on another origin can read when to retry a 429")
}

// The error table is one sorted list of unique codes, each its HTTP status
// × 100 + n, so no two errors can be told apart only by their text.
func TestErrorTable(t *testing.T) {
	require.NotEmpty(t, errorTable)
	seen := map[int]string{}
	for i, e := range errorTable {
		require.NotContains(t, seen, e.code, "code %d used twice (%q and %q)", e.code, seen[e.code], e.message)
		seen[e.code] = e.message
		require.Equal(t, e.status, e.code/100, "code %d is not status %d × 100 + n", e.code, e.status)
		require.NotEmpty(t, e.message)
		if i > 0 {
			require.Less(t, errorTable[i-1].code, e.code, "the table in api/errors.go is not sorted by code")
		}
	}
}
