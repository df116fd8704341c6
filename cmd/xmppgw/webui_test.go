package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseConfig_WebUI(t *testing.T) {
	c, err := parseConfig(nil, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	require.True(t, c.WebUI, "the demo page is on by default")
	c, err = parseConfig([]string{"-web-ui=false"}, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	require.False(t, c.WebUI)
	c, err = parseConfig(nil, env(map[string]string{"XMPPGW_WEB_UI": "false"}), &bytes.Buffer{})
	require.NoError(t, err)
	require.False(t, c.WebUI)
	_, err = parseConfig(nil, env(map[string]string{"XMPPGW_WEB_UI": "maybe"}), &bytes.Buffer{})
	require.ErrorContains(t, err, "XMPPGW_WEB_UI: must be true or false")
}

// -h must document every setting: each flag with its variable, each secret.
func TestHelp_ListsEveryOption(t *testing.T) {
	var out bytes.Buffer
	_, err := parseConfig([]string{"-h"}, env(nil), &out)
	require.Error(t, err)
	for _, o := range options() {
		require.Contains(t, out.String(), o.env, "xmppgw -h does not mention %s", o.env)
		if o.flag != "" {
			require.Contains(t, out.String(), "-"+o.flag+" ", "xmppgw -h does not list -%s", o.flag)
		}
	}
	for _, sub := range []string{"xmppgw token", "xmppgw healthcheck", "xmppgw version"} {
		require.True(t, strings.Contains(out.String(), sub), "usage does not mention %q", sub)
	}
}
