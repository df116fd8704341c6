package prosody

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRegister_PasswordNeverOnTheCommandLine runs Register against a stand-in
// prosodyctl that records its arguments and standard input: the password
// must arrive on stdin only (argv is visible to every local user in ps).
func TestRegister_PasswordNeverOnTheCommandLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctl := filepath.Join(dir, "prosodyctl")
	// The stand-in says "already exists" to adduser once a user exists, like
	// the real one, so the password reset path (passwd) is exercised too.
	script := `#!/bin/sh
printf '%s\n' "$*" >> "` + dir + `/argv"
cat >> "` + dir + `/stdin"
if [ "$3" = adduser ] && [ -e "` + dir + `/exists" ]; then echo "That user already exists"; exit 1; fi
touch "` + dir + `/exists"
`
	require.NoError(t, os.WriteFile(ctl, []byte(script), 0o700))
	s := &Server{Domain: "localhost", Dir: dir, ConfigFile: filepath.Join(dir, "prosody.cfg.lua"), ctlBin: ctl}
	const password = "s3cret-pass-word"
	require.NoError(t, s.Register(context.Background(), "alice", password))
	require.NoError(t, s.Register(context.Background(), "alice", password)) // existing: reset

	argv, err := os.ReadFile(filepath.Join(dir, "argv"))
	require.NoError(t, err)
	require.NotContains(t, string(argv), password)
	require.Equal(t, []string{
		"--config " + s.ConfigFile + " adduser alice@localhost",
		"--config " + s.ConfigFile + " adduser alice@localhost",
		"--config " + s.ConfigFile + " passwd alice@localhost",
	}, strings.Split(strings.TrimSpace(string(argv)), "\n"))
	stdin, err := os.ReadFile(filepath.Join(dir, "stdin"))
	require.NoError(t, err)
	require.Equal(t, strings.Repeat(password+"\n", 6), string(stdin))

	require.ErrorContains(t, s.Register(context.Background(), "bob", "two\nlines"), "line break")
}
