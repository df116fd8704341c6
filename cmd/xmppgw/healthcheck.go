package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// runHealthcheck implements `xmppgw healthcheck`: GET http://<listen>/healthz
// (or /readyz with -ready) and exit 0 on 200, 1 otherwise. It exists for the
// Dockerfile's HEALTHCHECK: the distroless image has no shell and no curl.
// The address comes from -listen, else XMPPGW_LISTEN (the container's own
// setting), else the default; a wildcard host is probed on loopback.
func runHealthcheck(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet("xmppgw healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := getenv("XMPPGW_LISTEN")
	if def == "" {
		def = "127.0.0.1:8080"
	}
	listen := fs.String("listen", def, "the gateway's listen address (env XMPPGW_LISTEN)")
	ready := fs.Bool("ready", false, "check /readyz (the XMPP server is reachable) instead of /healthz")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	url, err := healthURL(*listen, *ready)
	if err != nil {
		fmt.Fprintf(stderr, "xmppgw healthcheck: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "xmppgw healthcheck: %v\n", err)
		return 2
	}
	// No proxy: the target is this container's own port.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	res, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "xmppgw healthcheck: %v\n", err)
		return 1
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "xmppgw healthcheck: %s answered %s\n", url, res.Status)
		return 1
	}
	return 0
}

// healthURL turns a listen address into the URL to probe: 0.0.0.0, :: and
// an empty host mean "every interface", which is probed on loopback.
func healthURL(listen string, ready bool) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", listen, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::", "[::]":
		host = "::1"
	}
	path := "/healthz"
	if ready {
		path = "/readyz"
	}
	return "http://" + net.JoinHostPort(host, port) + path, nil
}
