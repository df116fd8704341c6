// Command xmppgw is the REST + Server-Sent Events gateway over XMPP. main
// only wires the packages together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/xmppgw/xmppgw/api"
	"github.com/xmppgw/xmppgw/fastpath"
	"github.com/xmppgw/xmppgw/gateway"
	"github.com/xmppgw/xmppgw/internal/cluster"
	"github.com/xmppgw/xmppgw/internal/logbuf"
	"github.com/xmppgw/xmppgw/sse"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "token":
			return runToken(args[1:], getenv, os.Stdout, stderr)
		case "healthcheck":
			return runHealthcheck(ctx, args[1:], getenv, stderr)
		case "version":
			fmt.Fprintln(os.Stdout, "xmppgw", version)
			return 0
		}
	}
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "xmppgw: invalid configuration:\n%v\n", err)
		return 2
	}
	logOut := logbuf.New(stderr, cfg.LogDelay, 64<<10)
	defer logOut.Close()
	log := slog.New(logbuf.Handler(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: cfg.LogLevel}), logOut, slog.LevelWarn))
	if cfg.JWTEphemeral {
		log.Warn("XMPPGW_JWT_SECRET not set: using a random secret; tokens die with this process")
	}
	var node *clusterNode
	if cfg.RedisURL != "" {
		cluster.SetRedisLogger(log.With(slog.String("tag", "redis")))
		if node, err = joinCluster(ctx, cfg); err != nil {
			log.Error("joining the cluster", slog.String("error", err.Error()))
			return 1
		}
		defer func() {
			leaveCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			node.leave(leaveCtx, log)
		}()
		log.Info("cluster mode: events live in Redis and any node serves them; a dead node's streams are taken over by a survivor (re-opened with XMPPGW_XMPP_TOKEN_SECRET, else ended with a \"lost\" event and 410) (docs/cluster.md)",
			slog.String("cluster", node.c.Config().Name), slog.String("node", node.c.Node()), slog.String("advertise", cfg.Cluster.Advertise))
	}
	tlsConfig, err := cfg.tlsConfig()
	if err != nil {
		log.Error("invalid configuration", slog.String("error", err.Error()))
		return 2
	}
	broker := sse.NewBroker(sse.WithReplaySize(cfg.SSEReplay), sse.WithQueueSize(cfg.SSEQueue),
		sse.WithHeartbeat(cfg.SSEHeartbeat), sse.WithMaxSubscribers(cfg.SSEMaxSubscribers),
		sse.WithLogger(log.With(slog.String("tag", "sse"))))
	gwCfg := gateway.Config{Addr: cfg.XMPPAddr, Domain: cfg.XMPPDomain,
		TLS: gateway.TLSMode(cfg.XMPPTLS), TLSConfig: tlsConfig, LoginTimeout: cfg.LoginTimeout,
		IdleTimeout: cfg.StreamIdle, TokenSecret: cfg.XMPPTokenSecret, ServiceAccount: cfg.NotifyFrom,
		MaxStreams: cfg.MaxStreams, MaxStreamsPerUser: cfg.MaxStreamsPerUser, AutojoinBookmarks: cfg.Autojoin}
	// In cluster mode the streams' events go to Redis, and this node's
	// broker mirrors the ones its subscribers read (docs/cluster.md).
	var events gateway.Publisher = broker
	var reg *cluster.GatewayRegistry
	if node != nil {
		clusterLog := log.With(slog.String("tag", "cluster"))
		reg = node.c.NewGatewayRegistry(cluster.Caps{PerUser: cfg.MaxStreamsPerUser, Total: cfg.MaxStreams}, clusterLog)
		gwCfg.Registry = reg
		node.beat.WhenStoreLost(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			reg.Restore(ctx)
		})
		events = node.shareEvents(reg, broker, clusterLog)
	}
	mgr, err := gateway.NewManager(gwCfg, events, log)
	if err != nil {
		log.Error("gateway", slog.String("error", err.Error()))
		return 2
	}
	if node != nil {
		node.events.Fenced = mgr.Yield // before any login opens a topic
		node.takeOver(reg, mgr, log.With(slog.String("tag", "cluster")))
	}
	// Workgroups (fastpath): one engine here, or in cluster mode one per
	// cluster, on the node holding the fastpath lease (docs/cluster.md).
	workgroups, err := loadWorkgroups(cfg.WorkgroupsFile, cfg.XMPPDomain)
	if err != nil {
		log.Error("invalid configuration", slog.String("error", err.Error()))
		return 2
	}
	var queues *fastpath.Service
	if node == nil {
		queues, err = fastpath.New(fastpath.Options{}, workgroups)
		if err != nil {
			log.Error("invalid configuration", slog.String("error", "XMPPGW_WORKGROUPS_FILE: "+err.Error()))
			return 2
		}
		queues.Bind(fastpath.StreamHooks(func(id string) (fastpath.Stream, bool) {
			st, err := mgr.Stream(id)
			if err != nil {
				return nil, false
			}
			return st, true
		}))
		queues.Start()
		defer queues.Close()
	} else if _, err := fastpath.New(fastpath.Options{}, workgroups); err != nil {
		log.Error("invalid configuration", slog.String("error", "XMPPGW_WORKGROUPS_FILE: "+err.Error()))
		return 2
	}
	apiCfg := api.Config{JWTSecret: cfg.JWTSecret, TokenTTL: cfg.TokenTTL, CORSOrigins: cfg.CORSOrigins,
		AdminUser: cfg.AdminUser, AdminPassword: cfg.AdminPassword, TrustedProxies: cfg.TrustedProxies,
		LoginFailuresPerUser: cfg.LoginFailuresPerUser, LoginFailuresPerIP: cfg.LoginFailuresPerIP,
		SendsPerSecond: cfg.SendsPerSecond, MaxMessageBytes: cfg.MaxMessageBytes, WebUI: cfg.WebUI,
		Fastpath: queues}
	if node != nil {
		apiCfg.ClusterReady = node.ready
		apiCfg.Revocations = node.c
		apiCfg.NodeName, apiCfg.ClusterStreams = node.c.Node(), node.c.List
		apiCfg.Forward, apiCfg.ClusterSecret = node.c, cfg.ClusterSecret
		apiCfg.Relay, apiCfg.ClusterStream = node.relay, node.c.Get
		apiCfg.ClusterStats = node.stats
		node.queues = node.c.NewFastpathLeader(node.beat, workgroups, fastpath.Options{}, log.With(slog.String("tag", "cluster")))
		apiCfg.FastpathCluster, apiCfg.StreamPresence = node.queues, node.c.StreamPresence
		limitLog := log.With(slog.String("tag", "cluster"))
		apiCfg.Limiters = func(name string, perMinute float64, burst int) api.KeyedLimiter {
			return node.c.Limiter(name, perMinute, burst, api.NewLocalLimiter(name, perMinute, burst), limitLog)
		}
	}
	srv := api.NewServer(apiCfg, api.ManagerStreams(mgr), broker, log)
	if node != nil {
		node.runQueues(srv)
		if err := node.followRevocations(ctx, srv, log); err != nil {
			log.Error("following the cluster's revocations", slog.String("error", err.Error()))
			return 1
		}
	}
	httpSrv := &http.Server{
		Handler:           srv.Routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// SSE responses push their own write deadline forward before every
		// write, so this only bounds ordinary REST responses.
		WriteTimeout: 60 * time.Second,
		IdleTimeout:  120 * time.Second,
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		log.Error("listen", slog.String("error", err.Error()))
		return 1
	}
	log.Info("xmppgw listening", slog.String("version", version), slog.String("addr", ln.Addr().String()), slog.String("xmpp", cfg.XMPPAddr),
		slog.String("domain", cfg.XMPPDomain), slog.String("xmpp_tls", cfg.XMPPTLS))
	serveErr := make(chan error, 3)
	go func() { serveErr <- httpSrv.Serve(ln) }()
	if node != nil {
		node.serve(srv.ClusterRoutes(cfg.ClusterSecret), serveErr)
		log.Info("cluster listener", slog.String("addr", node.ln.Addr().String()))
	}
	var metricsSrv *http.Server
	if cfg.MetricsListen != "" {
		mln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			log.Error("metrics listen", slog.String("error", err.Error()))
			return 1
		}
		metricsSrv = &http.Server{Handler: srv.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { serveErr <- metricsSrv.Serve(mln) }()
		log.Info("metrics listening", slog.String("addr", mln.Addr().String()))
	}

	if cfg.DebugListen != "" {
		dln, err := net.Listen("tcp", cfg.DebugListen)
		if err != nil {
			log.Error("debug listen", slog.String("error", err.Error()))
			return 1
		}
		debugSrv := &http.Server{Handler: debugMux(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = debugSrv.Serve(dln) }()
		defer debugSrv.Close()
		log.Info("debug listening", slog.String("addr", dln.Addr().String()))
	}

	code := 0
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		log.Error("http server", slog.String("error", err.Error()))
		code = 1
	}
	// Streams first: each publishes its final "offline" event and ends its
	// SSE connections, which http.Server.Shutdown would otherwise wait on.
	if node != nil && len(cfg.XMPPTokenSecret) > 0 {
		// The streams can live on elsewhere: hand them over first.
		node.drain(mgr, cfg.DrainTimeout, log.With(slog.String("tag", "cluster")))
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := mgr.Close(shutdownCtx); err != nil {
		log.Warn("closing streams", slog.String("error", err.Error()))
	}
	if node != nil {
		// The streams' last events are in Redis now; end the mirrors, whose
		// subscribers reconnect to another node.
		node.stopEvents()
	}
	// Event streams own their connections (http.Server.Shutdown no longer
	// tracks them): let them write their last events, then end them.
	if err := broker.Drain(shutdownCtx); err != nil {
		log.Warn("draining event streams", slog.String("error", err.Error()))
	}
	broker.Close()
	if err := httpSrv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("http shutdown", slog.String("error", err.Error()))
	}
	if metricsSrv != nil {
		_ = metricsSrv.Shutdown(shutdownCtx)
	}
	log.Info("stopped")
	return code
}
