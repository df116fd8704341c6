// Command devprosody runs a local Prosody for `make run`: data kept in -dir
// across runs, demo users registered (idempotently: existing accounts get
// their password reset), one "prosody ready ..." line on stdout, then it
// waits for SIGINT/SIGTERM and stops Prosody cleanly. With -jwt-secret (or
// $XMPPGW_XMPP_TOKEN_SECRET) it installs mod_auth_xmppgw_jwt so the gateway
// can log in on a user's behalf (docs/admin-login.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/xmppgw/xmppgw/internal/prosody"
)

// tokenSecretEnv is the gateway's variable for the same secret.
const tokenSecretEnv = "XMPPGW_XMPP_TOKEN_SECRET"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "devprosody: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("devprosody", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "./.dev/prosody", "working directory (config, data, certificate, log); kept across runs")
	port := fs.Int("port", 5222, "c2s port on 127.0.0.1")
	domain := fs.String("domain", prosody.DefaultDomain, "XMPP domain")
	usersFlag := fs.String("users", "alice:demo,bob:demo,carol:demo", "comma-separated user:password pairs to register")
	// The default is read after parsing, not passed to fs.String, so that
	// -h never prints the secret.
	jwtSecret := fs.String("jwt-secret", "", "HS256 secret (≥ 32 bytes) shared with the gateway for token logins on a user's behalf;\n"+
		"default $"+tokenSecretEnv+" (prefer the variable: flags are visible in ps); empty = off")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *jwtSecret == "" {
		*jwtSecret = os.Getenv(tokenSecretEnv)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	names, users, err := parseUsers(*usersFlag)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	srv, err := prosody.Start(startCtx, prosody.Options{
		Dir: *dir, Port: *port, Domain: *domain, Users: users, JWTSecret: *jwtSecret,
	})
	if err != nil {
		if errors.Is(err, prosody.ErrNotInstalled) {
			return err
		}
		return fmt.Errorf("starting prosody in %s: %w", *dir, err)
	}
	fmt.Fprintf(stdout, "prosody ready on %s domain=%s users=%s\n", srv.Addr, srv.Domain, strings.Join(names, ","))
	fmt.Fprintf(stderr, "devprosody: config %s, log %s, CA certificate %s; Ctrl-C stops\n", srv.ConfigFile, srv.LogFile, srv.CertFile)
	if srv.JWTSecret != "" {
		fmt.Fprintln(stderr, "devprosody: token logins on (mod_auth_xmppgw_jwt, secret not shown)")
	}

	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := srv.Stop(); err != nil {
				return fmt.Errorf("stopping prosody: %w", err)
			}
			fmt.Fprintln(stderr, "devprosody: prosody stopped")
			return nil
		case <-tick.C:
			if !srv.Running() {
				tail := srv.LogTail(20)
				_ = srv.Stop()
				return fmt.Errorf("prosody exited unexpectedly; log tail:\n%s", tail)
			}
		}
	}
}

// parseUsers parses "alice:demo,bob:demo" (a password may contain ':').
func parseUsers(s string) (names []string, users map[string]string, err error) {
	users = map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		name, password, ok := strings.Cut(pair, ":")
		if !ok || name == "" || password == "" {
			return nil, nil, fmt.Errorf("-users: %q is not user:password", pair)
		}
		if _, dup := users[name]; dup {
			return nil, nil, fmt.Errorf("-users: %q given twice", name)
		}
		names = append(names, name)
		users[name] = password
	}
	return names, users, nil
}
