package prosody

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// CreatePubSubNode creates node on the pubsub component through the admin
// console (ordinary users may not create nodes there) and makes publisher
// (a bare JID) its publisher. The server must be running with its admin
// socket.
func (s *Server) CreatePubSubNode(ctx context.Context, node, publisher string) error {
	lua := fmt.Sprintf(`> local s = prosody.hosts[%s].modules.pubsub.service; assert(s:create(%s, true)); assert(s:set_affiliation(%s, true, %s, "publisher")); return "created"`,
		luaString(s.PubSubDomain), luaString(node), luaString(node), luaString(publisher))
	cmd := exec.CommandContext(ctx, s.ctlBin, "--config", s.ConfigFile, "shell")
	cmd.Dir = s.Dir
	cmd.Stdin = strings.NewReader(lua + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("prosody: creating pubsub node %q: %v: %s", node, err, lastLines(out, 5))
	}
	if !strings.Contains(string(out), "created") {
		return fmt.Errorf("prosody: creating pubsub node %q: %s", node, lastLines(out, 5))
	}
	return nil
}
