package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// In cluster mode /readyz also needs the cluster: a node whose Redis is
// gone (or whose lease lapsed) is taken out of the load balancer.
func TestReadyz_ClusterMode(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	e := newEnv(t, envOptions{api: Config{ClusterReady: func(context.Context) error {
		if down.Load() {
			return errors.New("dial tcp 127.0.0.1:6379: connection refused")
		}
		return nil
	}}})
	res, body := e.do(http.MethodGet, "/readyz", "", nil, "")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	down.Store(true)
	res, body = e.do(http.MethodGet, "/readyz", "", nil, "")
	er := requireError(t, res, body, http.StatusServiceUnavailable)
	require.Equal(t, 50305, er.Code)
	require.Contains(t, er.Error, "connection refused")
}

// The internal listener's routes want the cluster secret and nothing else.
func TestClusterRoutes_NeedTheClusterSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	secret := strings.Repeat("k", 32)
	h := e.srv.ClusterRoutes([]byte(secret))
	for _, tt := range []struct {
		auth string
		want int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer " + secret[:31], http.StatusUnauthorized},
		{"Basic " + secret, http.StatusUnauthorized},
		{"Bearer " + secret + "x", http.StatusUnauthorized},
		{"Bearer " + secret, http.StatusOK},
	} {
		req := httptest.NewRequest(http.MethodGet, "/internal/v1/ping", nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, tt.want, rec.Code, "%q: %s", tt.auth, rec.Body.String())
		if tt.want != http.StatusOK {
			require.Contains(t, rec.Body.String(), `"code":40100`)
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/internal/v1/nothing", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusNotFound, rec.Code)
}
