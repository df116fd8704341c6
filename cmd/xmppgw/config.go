package main

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/xmppgw/xmppgw/gateway"
)

// config is everything the binary reads from flags and XMPPGW_* variables.
type config struct {
	Listen        string
	XMPPAddr      string
	XMPPDomain    string
	XMPPTLS       string
	XMPPCAFile    string
	XMPPTLSServer string
	JWTSecret     []byte
	JWTEphemeral  bool
	TokenTTL      time.Duration
	CORSOrigins   []string
	StreamIdle    time.Duration
	LoginTimeout  time.Duration
	SSEReplay     int
	SSEQueue      int
	SSEHeartbeat  time.Duration
	LogLevel      slog.Level
}

// option is one setting: a flag and its environment mirror.
type option struct {
	flag, env, def, usage string
	value                 *string
}

// parseConfig reads flags, falling back to XMPPGW_* variables, then to
// defaults, and validates everything; errors name the variable.
func parseConfig(args []string, getenv func(string) string, usageOut io.Writer) (config, error) {
	fs := flag.NewFlagSet("xmppgw", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	opts := []*option{
		{flag: "listen", env: "XMPPGW_LISTEN", def: "127.0.0.1:8080", usage: "HTTP listen address"},
		{flag: "xmpp-addr", env: "XMPPGW_XMPP_ADDR", def: "127.0.0.1:5222", usage: "host:port of the XMPP server's client (c2s) listener"},
		{flag: "xmpp-domain", env: "XMPPGW_XMPP_DOMAIN", def: "localhost", usage: "XMPP domain users log in to"},
		{flag: "xmpp-tls", env: "XMPPGW_XMPP_TLS", def: "starttls", usage: "starttls, direct, or none (none only for loopback servers)"},
		{flag: "xmpp-ca-file", env: "XMPPGW_XMPP_CA_FILE", usage: "PEM file of CAs to trust for the XMPP server (default: system roots)"},
		{flag: "xmpp-tls-server-name", env: "XMPPGW_XMPP_TLS_SERVER_NAME", usage: "name to verify in the XMPP server's certificate (default: the domain)"},
		{flag: "jwt-secret", env: "XMPPGW_JWT_SECRET", usage: "HS256 signing secret for tokens, at least 32 bytes (or XMPPGW_JWT_SECRET_FILE); default: random per process"},
		{flag: "token-ttl", env: "XMPPGW_TOKEN_TTL", def: "12h", usage: "lifetime of issued tokens"},
		{flag: "cors-origins", env: "XMPPGW_CORS_ORIGINS", usage: "comma-separated browser origins allowed by CORS (empty: none)"},
		{flag: "stream-idle", env: "XMPPGW_STREAM_IDLE", def: "10m", usage: "close streams with no SSE subscriber and no REST call for this long"},
		{flag: "login-timeout", env: "XMPPGW_LOGIN_TIMEOUT", def: "15s", usage: "overall deadline of an XMPP login"},
		{flag: "sse-replay", env: "XMPPGW_SSE_REPLAY", def: "1024", usage: "events kept per stream for Last-Event-ID replay"},
		{flag: "sse-queue", env: "XMPPGW_SSE_QUEUE", def: "256", usage: "per-subscriber queue; a subscriber this far behind is disconnected"},
		{flag: "sse-heartbeat", env: "XMPPGW_SSE_HEARTBEAT", def: "15s", usage: "interval of SSE heartbeat comments"},
		{flag: "log-level", env: "XMPPGW_LOG_LEVEL", def: "info", usage: "debug, info, warn or error"},
	}
	for _, o := range opts {
		def := o.def
		if v := getenv(o.env); v != "" {
			def = v
		}
		o.value = fs.String(o.flag, def, fmt.Sprintf("%s (env %s)", o.usage, o.env))
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	get := func(name string) string {
		for _, o := range opts {
			if o.flag == name {
				return strings.TrimSpace(*o.value)
			}
		}
		panic("unknown option " + name)
	}
	var errs []error
	bad := func(env string, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", env, fmt.Sprintf(format, a...)))
	}
	c := config{Listen: get("listen"), XMPPAddr: get("xmpp-addr"), XMPPDomain: get("xmpp-domain"),
		XMPPTLS: get("xmpp-tls"), XMPPCAFile: get("xmpp-ca-file"), XMPPTLSServer: get("xmpp-tls-server-name")}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("XMPPGW_LISTEN", "%v", err)
	}
	host, _, err := net.SplitHostPort(c.XMPPAddr)
	if err != nil {
		bad("XMPPGW_XMPP_ADDR", "%v", err)
	}
	if _, err := gateway.UserJID("probe", c.XMPPDomain); err != nil {
		bad("XMPPGW_XMPP_DOMAIN", "not a valid XMPP domain")
	}
	switch gateway.TLSMode(c.XMPPTLS) {
	case gateway.TLSStartTLS, gateway.TLSDirect:
	case gateway.TLSNone:
		// Passwords travel in clear without TLS: only tolerable when the
		// server is on this machine.
		if err == nil && !isLoopback(host) {
			bad("XMPPGW_XMPP_TLS", "none is only allowed for a loopback XMPP server, not %q", host)
		}
	default:
		bad("XMPPGW_XMPP_TLS", "must be starttls, direct or none, not %q", c.XMPPTLS)
	}
	if c.XMPPCAFile != "" {
		if _, err := os.ReadFile(c.XMPPCAFile); err != nil {
			bad("XMPPGW_XMPP_CA_FILE", "%v", err)
		}
	}
	secret := get("jwt-secret")
	if file := getenv("XMPPGW_JWT_SECRET_FILE"); secret == "" && file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			bad("XMPPGW_JWT_SECRET_FILE", "%v", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	switch {
	case secret == "":
		c.JWTSecret, c.JWTEphemeral = make([]byte, 32), true
		_, _ = rand.Read(c.JWTSecret)
	case len(secret) < 32:
		bad("XMPPGW_JWT_SECRET", "must be at least 32 bytes")
	default:
		c.JWTSecret = []byte(secret)
	}
	durations := []struct {
		name, env string
		dst       *time.Duration
	}{{"token-ttl", "XMPPGW_TOKEN_TTL", &c.TokenTTL}, {"stream-idle", "XMPPGW_STREAM_IDLE", &c.StreamIdle},
		{"login-timeout", "XMPPGW_LOGIN_TIMEOUT", &c.LoginTimeout}, {"sse-heartbeat", "XMPPGW_SSE_HEARTBEAT", &c.SSEHeartbeat}}
	for _, d := range durations {
		v, err := time.ParseDuration(get(d.name))
		if err != nil || v <= 0 {
			bad(d.env, "must be a positive duration like 30s or 10m")
		}
		*d.dst = v
	}
	ints := []struct {
		name, env string
		dst       *int
	}{{"sse-replay", "XMPPGW_SSE_REPLAY", &c.SSEReplay}, {"sse-queue", "XMPPGW_SSE_QUEUE", &c.SSEQueue}}
	for _, n := range ints {
		if _, err := fmt.Sscanf(get(n.name), "%d", n.dst); err != nil || *n.dst < 1 || *n.dst > 1_000_000 {
			bad(n.env, "must be a whole number from 1 to 1000000")
		}
	}
	for _, o := range strings.Split(get("cors-origins"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.CORSOrigins = append(c.CORSOrigins, o)
		}
	}
	if err := c.LogLevel.UnmarshalText([]byte(get("log-level"))); err != nil {
		bad("XMPPGW_LOG_LEVEL", "must be debug, info, warn or error")
	}
	return c, errors.Join(errs...)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tlsConfig builds the TLS settings for XMPP connections.
func (c config) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{ServerName: c.XMPPDomain, MinVersion: tls.VersionTLS12}
	if c.XMPPTLSServer != "" {
		tc.ServerName = c.XMPPTLSServer
	}
	if c.XMPPCAFile != "" {
		pem, err := os.ReadFile(c.XMPPCAFile)
		if err != nil {
			return nil, fmt.Errorf("XMPPGW_XMPP_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("XMPPGW_XMPP_CA_FILE: no PEM certificates found")
		}
		tc.RootCAs = pool
	}
	return tc, nil
}
