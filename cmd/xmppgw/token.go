package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/xmppgw/xmppgw/api"
)

// runToken implements `xmppgw token --admin --ttl 1h [--name NAME]`: it
// mints an admin bearer token with the configured XMPPGW_JWT_SECRET.
func runToken(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("xmppgw token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := fs.Bool("admin", false, "mint an admin token (the only kind this command mints)")
	ttl := fs.Duration("ttl", time.Hour, "token lifetime")
	name := fs.String("name", "cli", "who the token is for; appears in the audit log")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if !*admin {
		fmt.Fprintln(stderr, "xmppgw token: pass --admin (user tokens come from login)")
		return 2
	}
	if *ttl <= 0 || *ttl > 30*24*time.Hour {
		fmt.Fprintln(stderr, "xmppgw token: --ttl must be between 1s and 720h")
		return 2
	}
	if strings.TrimSpace(*name) == "" {
		fmt.Fprintln(stderr, "xmppgw token: --name must not be empty")
		return 2
	}
	cfg, err := parseConfig(nil, getenv, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "xmppgw token: invalid configuration:\n%v\n", err)
		return 2
	}
	if cfg.JWTEphemeral {
		fmt.Fprintln(stderr, "xmppgw token: XMPPGW_JWT_SECRET (or _FILE) must be set to the gateway's secret")
		return 2
	}
	tok, exp, err := api.MintAdminToken(cfg.JWTSecret, *name, *ttl)
	if err != nil {
		fmt.Fprintf(stderr, "xmppgw token: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, tok)
	fmt.Fprintf(stderr, "admin token for %q, expires %s\n", *name, exp.UTC().Format(time.RFC3339))
	return 0
}
