package gateway

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// go-xmpp's Close arms a 10 s timer goroutine that closes the socket
	// whatever happens; it ends by itself and holds nothing of ours.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/xmppo/go-xmpp.(*Client).Close.func1"))
}
