package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// TestParseArgs_PasswordsNotInArgv: the users and passwords come from
// -users-file or $DEVPROSODY_USERS; a -users flag (passwords visible in ps)
// is refused; no error quotes a password.
func TestParseArgs_PasswordsNotInArgv(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "users")
	require.NoError(t, os.WriteFile(file, []byte("# demo users\nalice:demo\n\nbob:pa:ss\r\n"), 0o600))
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    map[string]string
		names   []string
		wantErr string
	}{
		{"file", []string{"-users-file", file}, nil,
			map[string]string{"alice": "demo", "bob": "pa:ss"}, []string{"alice", "bob"}, ""},
		{"environment", nil, map[string]string{usersEnv: "carol:demo, dave:x"},
			map[string]string{"carol": "demo", "dave": "x"}, []string{"carol", "dave"}, ""},
		{"default", nil, nil,
			map[string]string{"alice": "demo", "bob": "demo", "carol": "demo"}, []string{"alice", "bob", "carol"}, ""},
		{"passwords on the command line", []string{"-users", "alice:secretpw"}, nil, nil, nil, "visible in ps"},
		{"file and environment", []string{"-users-file", file}, map[string]string{usersEnv: "a:b"}, nil, nil, "not both"},
		{"missing file", []string{"-users-file", file + ".missing"}, nil, nil, nil, "-users-file"},
		{"bad entry", nil, map[string]string{usersEnv: "alice:secretpw,bob"}, nil, nil, "entry 2 is not user:password"},
		{"twice", nil, map[string]string{usersEnv: "alice:secretpw,alice:other"}, nil, nil, "given twice"},
		{"no users", nil, map[string]string{usersEnv: " , "}, nil, nil, "no users"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o, err := parseArgs(tt.args, envOf(tt.env), io.Discard)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), "secretpw")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, o.users)
			require.Equal(t, tt.names, o.names)
		})
	}
}

// TestRunDevScript_NoPasswordsInArgv: scripts/run-dev.sh (make run) starts
// devprosody with a users file, no user:password pair on its command line.
func TestRunDevScript_NoPasswordsInArgv(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../scripts/run-dev.sh")
	require.NoError(t, err)
	script := string(b)
	start := strings.Index(script, `"$DEV_DIR/devprosody" -dir`)
	require.GreaterOrEqual(t, start, 0, "run-dev.sh no longer starts devprosody")
	end := strings.Index(script[start:], "&\n")
	require.Greater(t, end, 0)
	invocation := script[start : start+end]
	require.Contains(t, invocation, "-users-file")
	require.NotContains(t, invocation, ":demo")
	require.NotContains(t, invocation, "-users ")
}
