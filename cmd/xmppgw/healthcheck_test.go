package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHealthURL(t *testing.T) {
	tests := []struct {
		listen string
		ready  bool
		want   string
	}{
		{"127.0.0.1:8080", false, "http://127.0.0.1:8080/healthz"},
		{"0.0.0.0:8080", false, "http://127.0.0.1:8080/healthz"},
		{":9000", true, "http://127.0.0.1:9000/readyz"},
		{"[::]:8080", false, "http://[::1]:8080/healthz"},
		{"gw.internal:80", false, "http://gw.internal:80/healthz"},
	}
	for _, tt := range tests {
		got, err := healthURL(tt.listen, tt.ready)
		require.NoError(t, err, tt.listen)
		require.Equal(t, tt.want, got)
	}
	_, err := healthURL("no-port", false)
	require.Error(t, err)
}

func TestHealthcheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	var stderr bytes.Buffer

	// The address comes from XMPPGW_LISTEN, as in the container.
	require.Equal(t, 0, run(context.Background(), []string{"healthcheck"}, env(map[string]string{"XMPPGW_LISTEN": addr}), &stderr), stderr.String())
	require.Equal(t, 0, runHealthcheck(context.Background(), []string{"-listen", addr, "-ready"}, env(nil), &stderr), stderr.String())

	status = http.StatusServiceUnavailable
	stderr.Reset()
	require.Equal(t, 1, runHealthcheck(context.Background(), []string{"-listen", addr}, env(nil), &stderr))
	require.Contains(t, stderr.String(), "503")

	srv.Close()
	stderr.Reset()
	require.Equal(t, 1, runHealthcheck(context.Background(), []string{"-listen", addr, "-timeout", "1s"}, env(nil), &stderr))
	require.Contains(t, stderr.String(), "xmppgw healthcheck:")

	require.Equal(t, 2, runHealthcheck(context.Background(), []string{"-listen", "nonsense"}, env(nil), &stderr))
}
