// Command devprosody runs a local Prosody for `make run`: data kept in -dir
// across runs, demo users registered (idempotently: existing accounts get
// their password reset), one "prosody ready ..." line on stdout, then it
// waits for SIGINT/SIGTERM and stops Prosody cleanly. With -jwt-secret (or
// $XMPPGW_XMPP_TOKEN_SECRET) it installs mod_auth_xmppgw_jwt so the gateway
// can log in on a user's behalf (docs/admin-login.md).
//
// The demo users and their passwords come from -users-file (one
// user:password per line) or $DEVPROSODY_USERS (user:password,...), never
// from the command line, which every local user can read with ps.
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

// usersEnv holds user:password pairs when no -users-file is given.
const usersEnv = "DEVPROSODY_USERS"

// defaultUsers are registered when neither -users-file nor $DEVPROSODY_USERS
// names any.
const defaultUsers = "alice:demo,bob:demo,carol:demo"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "devprosody: %v\n", err)
		os.Exit(1)
	}
}

// options is the parsed command line and environment.
type options struct {
	dir, domain, jwtSecret string
	port                   int
	names                  []string          // in the order given
	users                  map[string]string // name → password
}

// parseArgs reads the flags and, for secrets, the environment (getenv).
func parseArgs(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("devprosody", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.dir, "dir", "./.dev/prosody", "working directory (config, data, certificate, log); kept across runs")
	fs.IntVar(&o.port, "port", 5222, "c2s port on 127.0.0.1")
	fs.StringVar(&o.domain, "domain", prosody.DefaultDomain, "XMPP domain")
	usersFile := fs.String("users-file", "", "file of user:password lines to register (# comments allowed);\n"+
		"default $"+usersEnv+" (user:password,...), else "+defaultUsers)
	// -users (user:password pairs) is gone: kept as a flag only to refuse it
	// with a hint (and without echoing the value, as flag's errors would).
	oldUsers := fs.String("users", "", "removed: passwords on the command line show in ps; use -users-file or $"+usersEnv)
	// The default is read after parsing, not passed to fs.String, so that
	// -h never prints the secret.
	fs.StringVar(&o.jwtSecret, "jwt-secret", "", "HS256 secret (≥ 32 bytes) shared with the gateway for token logins on a user's behalf;\n"+
		"default $"+tokenSecretEnv+" (prefer the variable: flags are visible in ps); empty = off")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if *oldUsers != "" {
		return o, fmt.Errorf("-users: passwords on the command line are visible in ps: use -users-file or $%s", usersEnv)
	}
	if o.jwtSecret == "" {
		o.jwtSecret = getenv(tokenSecretEnv)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var err error
	switch env := getenv(usersEnv); {
	case *usersFile != "" && env != "":
		return o, fmt.Errorf("give -users-file or $%s, not both", usersEnv)
	case *usersFile != "":
		b, rerr := os.ReadFile(*usersFile)
		if rerr != nil {
			return o, fmt.Errorf("-users-file: %w", rerr)
		}
		o.names, o.users, err = parseUsers("-users-file", strings.Split(string(b), "\n"))
	case env != "":
		o.names, o.users, err = parseUsers("$"+usersEnv, strings.Split(env, ","))
	default:
		o.names, o.users, err = parseUsers("default users", strings.Split(defaultUsers, ","))
	}
	if err == nil && len(o.users) == 0 {
		err = errors.New("no users to register")
	}
	return o, err
}

func run(args []string, stdout, stderr io.Writer) error {
	o, err := parseArgs(args, os.Getenv, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	srv, err := prosody.Start(startCtx, prosody.Options{
		Dir: o.dir, Port: o.port, Domain: o.domain, Users: o.users, JWTSecret: o.jwtSecret,
	})
	if err != nil {
		if errors.Is(err, prosody.ErrNotInstalled) {
			return err
		}
		return fmt.Errorf("starting prosody in %s: %w", o.dir, err)
	}
	fmt.Fprintf(stdout, "prosody ready on %s domain=%s users=%s\n", srv.Addr, srv.Domain, strings.Join(o.names, ","))
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

// parseUsers parses user:password entries (a password may contain ':');
// blank entries and # comments are skipped. from names the source in errors,
// which never quote a password.
func parseUsers(from string, entries []string) (names []string, users map[string]string, err error) {
	users = map[string]string{}
	for i, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" || strings.HasPrefix(e, "#") {
			continue
		}
		name, password, ok := strings.Cut(e, ":")
		if !ok || name == "" || password == "" {
			return nil, nil, fmt.Errorf("%s: entry %d is not user:password", from, i+1)
		}
		if _, dup := users[name]; dup {
			return nil, nil, fmt.Errorf("%s: %q given twice", from, name)
		}
		names = append(names, name)
		users[name] = password
	}
	return names, users, nil
}
