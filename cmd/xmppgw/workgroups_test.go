package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/xmppgw/xmppgw/fastpath"
)

func TestLoadWorkgroups(t *testing.T) {
	t.Parallel()
	wgs, err := loadWorkgroups("", "localhost")
	require.NoError(t, err)
	require.Empty(t, wgs)
	path := filepath.Join(t.TempDir(), "wg.json")
	require.NoError(t, os.WriteFile(path, []byte(`[{"name":"diabetes","members":["alice","bob@localhost"],"open":true}]`), 0o600))
	wgs, err = loadWorkgroups(path, "localhost")
	require.NoError(t, err)
	require.Equal(t, []string{"alice@localhost", "bob@localhost"}, wgs[0].Members)
	svc, err := fastpath.New(fastpath.Options{}, wgs)
	require.NoError(t, err)
	svc.Close()
	require.NoError(t, os.WriteFile(path, []byte(`[{"name":"x","members":["a@b/c"]}]`), 0o600))
	_, err = loadWorkgroups(path, "localhost")
	require.ErrorContains(t, err, "XMPPGW_WORKGROUPS_FILE")
	_, err = loadWorkgroups(filepath.Join(t.TempDir(), "missing"), "localhost")
	require.Error(t, err)
}

// TestLoadWorkgroups_OpenByDefault: a workgroup from the file without
// "open" takes asks (it used to be closed: every ask 409); "open": false
// closes it; a misspelt field is an error at startup, not a silent default.
func TestLoadWorkgroups_OpenByDefault(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "wg.json")
	require.NoError(t, os.WriteFile(path, []byte(`[{"name":"diabetes","members":["alice"]},{"name":"night","members":["bob"],"open":false}]`), 0o600))
	wgs, err := loadWorkgroups(path, "localhost")
	require.NoError(t, err)
	require.True(t, wgs[0].Open)
	require.False(t, wgs[1].Open)
	svc, err := fastpath.New(fastpath.Options{}, wgs)
	require.NoError(t, err)
	defer svc.Close()
	_, err = svc.Ask(fastpath.AskRequest{Workgroup: "diabetes", User: "carol@localhost", Stream: "s1", Question: "q"})
	require.NoError(t, err)
	_, err = svc.Ask(fastpath.AskRequest{Workgroup: "night", User: "carol@localhost", Stream: "s1", Question: "q"})
	require.ErrorIs(t, err, fastpath.ErrWorkgroupClosed)

	require.NoError(t, os.WriteFile(path, []byte(`[{"name":"x","members":["a"],"opne":false}]`), 0o600))
	_, err = loadWorkgroups(path, "localhost")
	require.ErrorContains(t, err, "XMPPGW_WORKGROUPS_FILE")
}
