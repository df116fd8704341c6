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
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/xmppgw/xmppgw/gateway"
	"github.com/xmppgw/xmppgw/internal/cluster"
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
	DrainTimeout  time.Duration
	SSEReplay     int
	SSEQueue      int
	SSEHeartbeat  time.Duration
	LogDelay      time.Duration
	LogLevel      slog.Level

	AdminUser, AdminPassword string
	XMPPTokenSecret          []byte
	NotifyFrom               string
	TrustedProxies           []netip.Prefix
	LoginFailuresPerUser     int
	LoginFailuresPerIP       int
	SendsPerSecond           int
	MaxStreams               int
	MaxStreamsPerUser        int
	SSEMaxSubscribers        int
	MaxMessageBytes          int
	Autojoin                 bool
	MetricsListen            string
	DebugListen              string
	WebUI                    bool
	WorkgroupsFile           string

	// Cluster mode (docs/cluster.md): on when RedisURL is set.
	RedisURL      string
	Cluster       cluster.Config
	ClusterSecret []byte
}

// option is one setting: a flag and its environment mirror. Secrets have
// no flag (command lines are visible to every local user) but a _FILE
// variant.
type option struct {
	flag, env, def, usage string
	secret                bool
	value                 *string
}

func options() []*option {
	return []*option{
		{flag: "listen", env: "XMPPGW_LISTEN", def: "127.0.0.1:8080", usage: "HTTP listen address"},
		{flag: "xmpp-addr", env: "XMPPGW_XMPP_ADDR", def: "127.0.0.1:5222", usage: "host:port of the XMPP server's client (c2s) listener"},
		{flag: "xmpp-domain", env: "XMPPGW_XMPP_DOMAIN", def: "localhost", usage: "XMPP domain users log in to"},
		{flag: "xmpp-tls", env: "XMPPGW_XMPP_TLS", def: "starttls", usage: "starttls, direct, or none (none only for loopback servers)"},
		{flag: "xmpp-ca-file", env: "XMPPGW_XMPP_CA_FILE", usage: "PEM file of CAs to trust for the XMPP server (default: system roots)"},
		{flag: "xmpp-tls-server-name", env: "XMPPGW_XMPP_TLS_SERVER_NAME", usage: "name to verify in the XMPP server's certificate (default: the domain)"},
		{env: "XMPPGW_JWT_SECRET", secret: true, usage: "HS256 secret for API tokens, at least 32 bytes; default: random per process"},
		{flag: "token-ttl", env: "XMPPGW_TOKEN_TTL", def: "12h", usage: "lifetime of issued tokens"},
		{flag: "cors-origins", env: "XMPPGW_CORS_ORIGINS", usage: "comma-separated browser origins allowed by CORS (empty: none)"},
		{flag: "stream-idle", env: "XMPPGW_STREAM_IDLE", def: "10m", usage: "close streams with no SSE subscriber and no REST call for this long"},
		{flag: "login-timeout", env: "XMPPGW_LOGIN_TIMEOUT", def: "15s", usage: "overall deadline of an XMPP login"},
		{flag: "sse-replay", env: "XMPPGW_SSE_REPLAY", def: "1024", usage: "events kept per stream for Last-Event-ID replay"},
		{flag: "sse-queue", env: "XMPPGW_SSE_QUEUE", def: "256", usage: "per-subscriber queue; a subscriber this far behind is disconnected"},
		{flag: "sse-heartbeat", env: "XMPPGW_SSE_HEARTBEAT", def: "15s", usage: "interval of SSE heartbeat comments"},
		{flag: "sse-max-subscribers", env: "XMPPGW_SSE_MAX_SUBSCRIBERS", def: "16", usage: "event subscribers allowed per stream"},
		{flag: "log-level", env: "XMPPGW_LOG_LEVEL", def: "info", usage: "debug, info, warn or error"},
		{flag: "log-delay", env: "XMPPGW_LOG_DELAY", def: "100ms", usage: "longest time info and debug lines are held to be written together (0: each at once); warnings and errors go out at once"},
		{flag: "admin-user", env: "XMPPGW_ADMIN_USER", usage: "admin username for HTTP Basic (needs XMPPGW_ADMIN_PASSWORD)"},
		{env: "XMPPGW_ADMIN_PASSWORD", secret: true, usage: "admin password, at least 12 characters"},
		{env: "XMPPGW_XMPP_TOKEN_SECRET", secret: true, usage: "secret shared with the XMPP server's token auth module (≥ 32 bytes); enables admin logins on a user's behalf"},
		{flag: "notify-from", env: "XMPPGW_NOTIFY_FROM", usage: "username system notifications are sent from (needs XMPPGW_XMPP_TOKEN_SECRET)"},
		{flag: "trusted-proxies", env: "XMPPGW_TRUSTED_PROXIES", usage: "comma-separated CIDRs whose X-Forwarded-For is believed (default: none)"},
		{flag: "login-failures-per-user", env: "XMPPGW_LOGIN_FAILURES_PER_USER", def: "5", usage: "failed logins per username per minute before 429"},
		{flag: "login-failures-per-ip", env: "XMPPGW_LOGIN_FAILURES_PER_IP", def: "30", usage: "failed logins per client address per minute before 429"},
		{flag: "sends-per-second", env: "XMPPGW_SENDS_PER_SECOND", def: "20", usage: "messages per second per stream before 429"},
		{flag: "max-streams", env: "XMPPGW_MAX_STREAMS", def: "10000", usage: "streams open in total before logins get 503"},
		{flag: "max-streams-per-user", env: "XMPPGW_MAX_STREAMS_PER_USER", def: "32", usage: "streams one user may hold before logins get 429"},
		{flag: "metrics-listen", env: "XMPPGW_METRICS_LISTEN", usage: "separate address serving /metrics without auth (internal networks); empty: /metrics on the main listener, admin only"},
		{flag: "debug-listen", env: "XMPPGW_DEBUG_LISTEN", usage: "loopback address serving /debug/pprof and /debug/memstats (profiling, benchmarks); empty: off"},
		{flag: "autojoin", env: "XMPPGW_AUTOJOIN", def: "false", usage: "join the rooms a user bookmarked with autojoin when their stream logs in"},
		{flag: "max-message-bytes", env: "XMPPGW_MAX_MESSAGE_BYTES", def: "131072", usage: "largest message body in bytes"},
		{flag: "workgroups-file", env: "XMPPGW_WORKGROUPS_FILE", usage: "JSON array of fastpath workgroups to start with (admins manage them over REST too)"},
		{flag: "web-ui", env: "XMPPGW_WEB_UI", def: "true", usage: "serve the demo chat page at / (true or false; Swagger UI at /docs/ is always on)"},
		{flag: "redis-url", env: "XMPPGW_REDIS_URL", usage: "Redis to join a cluster through (redis://, rediss://, Sentinel ?master_name=, redis+cluster://); empty: single node, all state in this process. A URL with a password belongs in the environment, not on the command line"},
		{flag: "cluster", env: "XMPPGW_CLUSTER", def: cluster.DefaultName, usage: "cluster name, the Redis key prefix (letters, digits, '.', '_', '-')"},
		{flag: "cluster-listen", env: "XMPPGW_CLUSTER_LISTEN", usage: "host:port of this node's internal listener for the other nodes, advertised as is (cluster mode)"},
		{env: "XMPPGW_CLUSTER_SECRET", secret: true, usage: "secret the cluster's nodes authenticate each other with, at least 32 bytes (cluster mode)"},
		{flag: "lease-renew", env: "XMPPGW_LEASE_RENEW", def: cluster.DefaultLeaseRenew.String(), usage: "how often a cluster node renews its lease"},
		{flag: "drain-timeout", env: "XMPPGW_DRAIN_TIMEOUT", def: "30s", usage: "cluster mode with XMPPGW_XMPP_TOKEN_SECRET: how long SIGTERM waits for the other nodes to take this node's streams over before closing the rest"},
		{flag: "lease-ttl", env: "XMPPGW_LEASE_TTL", def: cluster.DefaultLeaseTTL.String(), usage: "how long a cluster node's lease lasts without renewal (more than -lease-renew)"},
	}
}

// parseConfig reads flags, falling back to XMPPGW_* variables, then to
// defaults, and validates everything; errors name the variable.
func parseConfig(args []string, getenv func(string) string, usageOut io.Writer) (config, error) {
	fs := flag.NewFlagSet("xmppgw", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	opts := options()
	var errs []error
	bad := func(env string, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", env, fmt.Sprintf(format, a...)))
	}
	for _, o := range opts {
		v := o.def
		if e := getenv(o.env); e != "" {
			v = e
		}
		if o.secret {
			if file := getenv(o.env + "_FILE"); v == "" && file != "" {
				b, err := os.ReadFile(file)
				if err != nil {
					bad(o.env+"_FILE", "%v", err)
				}
				v = strings.TrimSpace(string(b))
			}
			o.value = &v
			continue
		}
		o.value = fs.String(o.flag, v, fmt.Sprintf("%s (env %s)", o.usage, o.env))
	}
	fs.Usage = func() {
		fmt.Fprintln(usageOut, "Usage: xmppgw [flags]        serve the gateway\n       xmppgw token --admin   mint an admin token\n       xmppgw healthcheck     exit 0 if the gateway at -listen answers /healthz (for Docker HEALTHCHECK)\n       xmppgw version\n\nFlags (each also read from its environment variable):")
		fs.PrintDefaults()
		fmt.Fprintln(usageOut, "\nSecrets (environment only, or NAME_FILE naming a file that holds it):")
		for _, o := range opts {
			if o.secret {
				fmt.Fprintf(usageOut, "  %s\n    \t%s\n", o.env, o.usage)
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	get := func(env string) string {
		for _, o := range opts {
			if o.env == env {
				return strings.TrimSpace(*o.value)
			}
		}
		panic("unknown option " + env)
	}
	c := config{Listen: get("XMPPGW_LISTEN"), XMPPAddr: get("XMPPGW_XMPP_ADDR"), XMPPDomain: get("XMPPGW_XMPP_DOMAIN"),
		XMPPTLS: get("XMPPGW_XMPP_TLS"), XMPPCAFile: get("XMPPGW_XMPP_CA_FILE"), XMPPTLSServer: get("XMPPGW_XMPP_TLS_SERVER_NAME"),
		AdminUser: get("XMPPGW_ADMIN_USER"), AdminPassword: get("XMPPGW_ADMIN_PASSWORD"), NotifyFrom: get("XMPPGW_NOTIFY_FROM")}
	c.WorkgroupsFile = get("XMPPGW_WORKGROUPS_FILE")
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
		// Passwords (and on-behalf tokens) travel in clear without TLS:
		// only tolerable when the server is on this machine.
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
	switch secret := get("XMPPGW_JWT_SECRET"); {
	case secret == "":
		c.JWTSecret, c.JWTEphemeral = make([]byte, 32), true
		_, _ = rand.Read(c.JWTSecret)
	case len(secret) < 32:
		bad("XMPPGW_JWT_SECRET", "must be at least 32 bytes")
	default:
		c.JWTSecret = []byte(secret)
	}
	switch {
	case (c.AdminUser == "") != (c.AdminPassword == ""):
		bad("XMPPGW_ADMIN_USER", "XMPPGW_ADMIN_USER and XMPPGW_ADMIN_PASSWORD go together")
	case c.AdminPassword != "" && len(c.AdminPassword) < 12:
		bad("XMPPGW_ADMIN_PASSWORD", "must be at least 12 characters")
	}
	if s := get("XMPPGW_XMPP_TOKEN_SECRET"); s != "" {
		if len(s) < 32 {
			bad("XMPPGW_XMPP_TOKEN_SECRET", "must be at least 32 bytes")
		}
		c.XMPPTokenSecret = []byte(s)
	}
	if c.NotifyFrom != "" {
		if _, err := gateway.UserJID(c.NotifyFrom, c.XMPPDomain); err != nil {
			bad("XMPPGW_NOTIFY_FROM", "not a valid username")
		}
		if c.XMPPTokenSecret == nil {
			bad("XMPPGW_NOTIFY_FROM", "needs XMPPGW_XMPP_TOKEN_SECRET (the gateway logs in as that account)")
		}
	}
	for _, d := range []struct {
		env string
		dst *time.Duration
	}{{"XMPPGW_TOKEN_TTL", &c.TokenTTL}, {"XMPPGW_STREAM_IDLE", &c.StreamIdle},
		{"XMPPGW_LOGIN_TIMEOUT", &c.LoginTimeout}, {"XMPPGW_SSE_HEARTBEAT", &c.SSEHeartbeat}, {"XMPPGW_DRAIN_TIMEOUT", &c.DrainTimeout}} {
		v, err := time.ParseDuration(get(d.env))
		if err != nil || v <= 0 {
			bad(d.env, "must be a positive duration like 30s or 10m")
		}
		*d.dst = v
	}
	if v, err := time.ParseDuration(get("XMPPGW_LOG_DELAY")); err != nil || v < 0 || v > time.Minute {
		bad("XMPPGW_LOG_DELAY", "must be a duration from 0 to 1m, like 100ms")
	} else {
		c.LogDelay = v
	}
	for _, n := range []struct {
		env string
		dst *int
	}{{"XMPPGW_SSE_REPLAY", &c.SSEReplay}, {"XMPPGW_SSE_QUEUE", &c.SSEQueue}, {"XMPPGW_SSE_MAX_SUBSCRIBERS", &c.SSEMaxSubscribers},
		{"XMPPGW_LOGIN_FAILURES_PER_USER", &c.LoginFailuresPerUser}, {"XMPPGW_LOGIN_FAILURES_PER_IP", &c.LoginFailuresPerIP},
		{"XMPPGW_SENDS_PER_SECOND", &c.SendsPerSecond}, {"XMPPGW_MAX_STREAMS", &c.MaxStreams},
		{"XMPPGW_MAX_STREAMS_PER_USER", &c.MaxStreamsPerUser}, {"XMPPGW_MAX_MESSAGE_BYTES", &c.MaxMessageBytes}} {
		v, err := strconv.Atoi(get(n.env))
		if err != nil || v < 1 || v > 10_000_000 {
			bad(n.env, "must be a whole number from 1 to 10000000")
		}
		*n.dst = v
	}
	for _, o := range strings.Split(get("XMPPGW_CORS_ORIGINS"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.CORSOrigins = append(c.CORSOrigins, o)
		}
	}
	for _, p := range strings.Split(get("XMPPGW_TRUSTED_PROXIES"), ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			addr, aerr := netip.ParseAddr(p)
			if aerr != nil {
				bad("XMPPGW_TRUSTED_PROXIES", "%q is not an address or CIDR", p)
				continue
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		c.TrustedProxies = append(c.TrustedProxies, prefix.Masked())
	}
	webUI, werr := strconv.ParseBool(get("XMPPGW_WEB_UI"))
	if werr != nil {
		bad("XMPPGW_WEB_UI", "must be true or false")
	}
	c.WebUI = webUI
	if c.MetricsListen = get("XMPPGW_METRICS_LISTEN"); c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			bad("XMPPGW_METRICS_LISTEN", "%v", err)
		}
	}
	if c.DebugListen = get("XMPPGW_DEBUG_LISTEN"); c.DebugListen != "" {
		if h, _, err := net.SplitHostPort(c.DebugListen); err != nil || !isLoopback(h) {
			bad("XMPPGW_DEBUG_LISTEN", "must be a loopback host:port (profiles expose internals)")
		}
	}
	switch get("XMPPGW_AUTOJOIN") {
	case "true", "1":
		c.Autojoin = true
	case "false", "0", "":
	default:
		bad("XMPPGW_AUTOJOIN", "must be true or false")
	}
	if err := c.LogLevel.UnmarshalText([]byte(get("XMPPGW_LOG_LEVEL"))); err != nil {
		bad("XMPPGW_LOG_LEVEL", "must be debug, info, warn or error")
	}
	c.clusterConfig(get, bad)
	return c, errors.Join(errs...)
}

// clusterConfig reads the cluster settings. They are checked in single-node
// mode too (a typo should not wait for the day Redis is turned on), but
// only cluster mode requires the secrets: every node must accept every
// other node's tokens, so a random per-process JWT secret cannot work.
func (c *config) clusterConfig(get func(string) string, bad func(string, string, ...any)) {
	c.RedisURL = get("XMPPGW_REDIS_URL")
	c.Cluster = cluster.Config{Name: get("XMPPGW_CLUSTER"), Advertise: get("XMPPGW_CLUSTER_LISTEN"), ReplayWindow: c.SSEReplay}
	for _, d := range []struct {
		env string
		dst *time.Duration
	}{{"XMPPGW_LEASE_RENEW", &c.Cluster.LeaseRenew}, {"XMPPGW_LEASE_TTL", &c.Cluster.LeaseTTL}} {
		v, err := time.ParseDuration(get(d.env))
		if err != nil || v <= 0 {
			bad(d.env, "must be a positive duration like 2s")
		}
		*d.dst = v
	}
	if err := cluster.CheckConfig(c.Cluster); err != nil {
		bad("XMPPGW_CLUSTER", "%v", err)
	}
	if s := get("XMPPGW_CLUSTER_SECRET"); s != "" {
		if len(s) < 32 {
			bad("XMPPGW_CLUSTER_SECRET", "must be at least 32 bytes")
		}
		c.ClusterSecret = []byte(s)
	}
	if c.RedisURL == "" {
		return
	}
	if rdb, err := cluster.NewClient(c.RedisURL); err != nil {
		bad("XMPPGW_REDIS_URL", "%v", err)
	} else {
		_ = rdb.Close()
	}
	if c.JWTEphemeral {
		bad("XMPPGW_JWT_SECRET", "must be set in cluster mode (XMPPGW_REDIS_URL): every node must accept the tokens of every other")
	}
	if c.ClusterSecret == nil {
		bad("XMPPGW_CLUSTER_SECRET", "must be set in cluster mode (XMPPGW_REDIS_URL)")
	}
	host, _, err := net.SplitHostPort(c.Cluster.Advertise)
	switch ip := net.ParseIP(host); {
	case c.Cluster.Advertise == "":
		bad("XMPPGW_CLUSTER_LISTEN", "must be set in cluster mode (XMPPGW_REDIS_URL): the host:port other nodes reach this one at")
	case err != nil:
		bad("XMPPGW_CLUSTER_LISTEN", "%v", err)
	case host == "" || ip != nil && ip.IsUnspecified():
		bad("XMPPGW_CLUSTER_LISTEN", "is advertised to the other nodes as is: give this node's own address, not %q", c.Cluster.Advertise)
	}
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
