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
