package main

import (
	"os"
	"testing"
)

// runAsGatewayEnv makes the test binary run as the gateway itself: the
// cluster tests start real, separate gateway processes from it (so one can
// be killed with SIGKILL), with the race detector still on.
const runAsGatewayEnv = "XMPPGW_TEST_RUN_AS_GATEWAY"

func TestMain(m *testing.M) {
	if os.Getenv(runAsGatewayEnv) == "1" {
		main() // exits
	}
	os.Exit(m.Run())
}
