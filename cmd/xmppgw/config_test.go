package main

import (
	"io"
	"strings"
	"testing"
	"time"

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
	}
	for _, tt := range tests {
		_, err := parseConfig(nil, env(tt.env), io.Discard)
		require.ErrorContains(t, err, tt.want)
	}
}
