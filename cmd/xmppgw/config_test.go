package main

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseConfig_Defaults(t *testing.T) {
	c, err := parseConfig(nil, env(nil), io.Discard)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8080", c.Listen)
	require.Equal(t, "starttls", c.XMPPTLS)
	require.Equal(t, 10*time.Minute, c.StreamIdle)
	require.True(t, c.JWTEphemeral)
	require.Len(t, c.JWTSecret, 32)
}

func TestParseConfig_EnvAndFlags(t *testing.T) {
	c, err := parseConfig([]string{"-listen", "127.0.0.1:9000"}, env(map[string]string{
		"XMPPGW_LISTEN": "127.0.0.1:1", "XMPPGW_XMPP_TLS": "none", "XMPPGW_XMPP_ADDR": "[::1]:5222",
		"XMPPGW_JWT_SECRET": strings.Repeat("s", 32), "XMPPGW_CORS_ORIGINS": "https://a.example, https://b.example",
	}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9000", c.Listen, "a flag beats its environment variable")
	require.Equal(t, []string{"https://a.example", "https://b.example"}, c.CORSOrigins)
	require.False(t, c.JWTEphemeral)
}

func TestParseConfig_Errors(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"XMPPGW_XMPP_TLS": "none", "XMPPGW_XMPP_ADDR": "xmpp.example.org:5222"}, "XMPPGW_XMPP_TLS: none is only allowed for a loopback"},
		{map[string]string{"XMPPGW_XMPP_TLS": "sometimes"}, "XMPPGW_XMPP_TLS: must be"},
		{map[string]string{"XMPPGW_JWT_SECRET": "short"}, "XMPPGW_JWT_SECRET: must be at least 32 bytes"},
		{map[string]string{"XMPPGW_JWT_SECRET_FILE": "/nonexistent/secret"}, "XMPPGW_JWT_SECRET_FILE"},
		{map[string]string{"XMPPGW_STREAM_IDLE": "soon"}, "XMPPGW_STREAM_IDLE"},
		{map[string]string{"XMPPGW_SSE_REPLAY": "0"}, "XMPPGW_SSE_REPLAY"},
		{map[string]string{"XMPPGW_LISTEN": "nope"}, "XMPPGW_LISTEN"},
		{map[string]string{"XMPPGW_XMPP_DOMAIN": "bad domain"}, "XMPPGW_XMPP_DOMAIN"},
		{map[string]string{"XMPPGW_LOG_LEVEL": "loud"}, "XMPPGW_LOG_LEVEL"},
		{map[string]string{"XMPPGW_LOG_DELAY": "-1s"}, "XMPPGW_LOG_DELAY"},
		{map[string]string{"XMPPGW_LOG_DELAY": "2m"}, "XMPPGW_LOG_DELAY"},
	}
	for _, tt := range tests {
		_, err := parseConfig(nil, env(tt.env), io.Discard)
		require.ErrorContains(t, err, tt.want)
	}
}

func TestParseConfig_AdminAndSecrets(t *testing.T) {
	dir := t.TempDir()
	secretFile := dir + "/tok"
	require.NoError(t, os.WriteFile(secretFile, []byte(strings.Repeat("t", 40)+"\n"), 0o600))
	c, err := parseConfig(nil, env(map[string]string{
		"XMPPGW_ADMIN_USER": "ops", "XMPPGW_ADMIN_PASSWORD": "correct horse battery",
		"XMPPGW_XMPP_TOKEN_SECRET_FILE": secretFile, "XMPPGW_NOTIFY_FROM": "system",
		"XMPPGW_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1",
	}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, "ops", c.AdminUser)
	require.Equal(t, strings.Repeat("t", 40), string(c.XMPPTokenSecret), "file contents, trimmed")
	require.Len(t, c.TrustedProxies, 2)
	require.Equal(t, "127.0.0.1/32", c.TrustedProxies[1].String())

	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"XMPPGW_ADMIN_USER": "ops"}, "go together"},
		{map[string]string{"XMPPGW_ADMIN_USER": "ops", "XMPPGW_ADMIN_PASSWORD": "short"}, "XMPPGW_ADMIN_PASSWORD: must be at least 12"},
		{map[string]string{"XMPPGW_XMPP_TOKEN_SECRET": "short"}, "XMPPGW_XMPP_TOKEN_SECRET: must be at least 32"},
		{map[string]string{"XMPPGW_NOTIFY_FROM": "system"}, "XMPPGW_NOTIFY_FROM: needs XMPPGW_XMPP_TOKEN_SECRET"},
		{map[string]string{"XMPPGW_TRUSTED_PROXIES": "everyone"}, "XMPPGW_TRUSTED_PROXIES"},
		{map[string]string{"XMPPGW_MAX_STREAMS": "0"}, "XMPPGW_MAX_STREAMS"},
	} {
		_, err := parseConfig(nil, env(tt.env), io.Discard)
		require.ErrorContains(t, err, tt.want)
	}
}

func TestTokenCommand(t *testing.T) {
	var out, errOut strings.Builder
	secret := strings.Repeat("k", 32)
	code := runToken([]string{"--admin", "--ttl", "5m", "--name", "ops"}, env(map[string]string{"XMPPGW_JWT_SECRET": secret}), &out, &errOut)
	require.Equal(t, 0, code, errOut.String())
	tok := strings.TrimSpace(out.String())
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{"HS256"}))
	require.NoError(t, err)
	require.Equal(t, "admin", claims["role"])
	require.Equal(t, "ops", claims["sub"])
	require.NotContains(t, errOut.String(), tok, "the token goes to stdout only")

	require.Equal(t, 2, runToken([]string{"--ttl", "5m"}, env(map[string]string{"XMPPGW_JWT_SECRET": secret}), &out, io.Discard))
	require.Equal(t, 2, runToken([]string{"--admin"}, env(nil), &out, io.Discard), "an ephemeral secret makes useless tokens")
}

func TestParseConfig_DebugListenIsLoopbackOnly(t *testing.T) {
	c, err := parseConfig(nil, env(map[string]string{"XMPPGW_DEBUG_LISTEN": "127.0.0.1:6060"}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:6060", c.DebugListen)
	_, err = parseConfig(nil, env(map[string]string{"XMPPGW_DEBUG_LISTEN": "0.0.0.0:6060"}), io.Discard)
	require.ErrorContains(t, err, "XMPPGW_DEBUG_LISTEN: must be a loopback")
}

func TestDebugMux_MemStats(t *testing.T) {
	rec := httptest.NewRecorder()
	debugMux().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/memstats", nil))
	var m map[string]uint64
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &m))
	require.Positive(t, m["goroutines"])
	require.Positive(t, m["heap_inuse"])
}
