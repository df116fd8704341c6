package deploy_test

import (
	"net"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// clusterComposeFile is docker-compose.cluster.yml: the services as in
// docker-compose.yml, plus the two x- blocks its gateway nodes merge.
type clusterComposeFile struct {
	composeFile `yaml:",inline"`
	Gateway     any `yaml:"x-gateway"`
	GatewayEnv  any `yaml:"x-gateway-env"`
}

func loadClusterCompose(t *testing.T) clusterComposeFile {
	return loadYAML[clusterComposeFile](t, "docker-compose.cluster.yml")
}

// gatewayNodes are the services that run the gateway image.
func gatewayNodes(c clusterComposeFile) map[string]composeService {
	nodes := map[string]composeService{}
	for name, s := range c.Services {
		if s.Build != nil {
			nodes[name] = s
		}
	}
	return nodes
}

// The cluster file wires three nodes that can work together: settings the
// gateway has, one Redis and one Prosody reached by service name, the
// same secrets and cluster name on every node, each advertising its own
// internal address, and a balancer that sends traffic to each node's API
// port and checks /readyz.
func TestClusterCompose_Nodes(t *testing.T) {
	c := loadClusterCompose(t)
	nodes := gatewayNodes(c)
	require.Len(t, nodes, 3, "three gateway nodes")
	known := gatewayEnv(t)

	redisHost, redisPort := "", ""
	var shared map[string]string
	for name, n := range nodes {
		for k := range n.Environment {
			require.True(t, known[k], "%s: %s is not a setting of cmd/xmppgw (config.go)", name, k)
		}
		env := n.Environment

		// Cluster mode needs these (cmd/xmppgw/config.go refuses to start
		// without them); the secrets must come from the operator.
		for _, k := range []string{"XMPPGW_REDIS_URL", "XMPPGW_CLUSTER", "XMPPGW_CLUSTER_LISTEN", "XMPPGW_JWT_SECRET", "XMPPGW_CLUSTER_SECRET"} {
			require.NotEmpty(t, env[k], "%s: %s", name, k)
		}
		for _, k := range []string{"XMPPGW_JWT_SECRET", "XMPPGW_CLUSTER_SECRET"} {
			require.Regexp(t, `^\$\{`+k+`:\?`, env[k], "%s: %s must be required from the environment, not defaulted", name, k)
		}

		// Its internal listener is advertised as is: the node's own name.
		host, port, err := net.SplitHostPort(env["XMPPGW_CLUSTER_LISTEN"])
		require.NoError(t, err)
		require.Equal(t, name, host, "%s advertises another host", name)
		require.Contains(t, n.Expose, port, "%s: the internal port is reachable by the other nodes", name)

		// Redis and Prosody by service name, waited for.
		m := regexp.MustCompile(`^redis://([a-z0-9-]+):(\d+)/\d+$`).FindStringSubmatch(env["XMPPGW_REDIS_URL"])
		require.NotNil(t, m, "%s: XMPPGW_REDIS_URL %q", name, env["XMPPGW_REDIS_URL"])
		if redisHost == "" {
			redisHost, redisPort = m[1], m[2]
		}
		require.Equal(t, []string{redisHost, redisPort}, m[1:], "%s: every node uses the same Redis", name)
		require.Equal(t, "service_healthy", n.DependsOn[redisHost].Condition, name)
		xmppHost, _, err := net.SplitHostPort(env["XMPPGW_XMPP_ADDR"])
		require.NoError(t, err)
		require.Equal(t, "service_healthy", n.DependsOn[xmppHost].Condition, name)
		require.Equal(t, "starttls", env["XMPPGW_XMPP_TLS"], name)

		// The same cluster, tokens and secret on every node.
		same := map[string]string{}
		for _, k := range []string{"XMPPGW_CLUSTER", "XMPPGW_JWT_SECRET", "XMPPGW_CLUSTER_SECRET", "XMPPGW_XMPP_DOMAIN", "XMPPGW_XMPP_TOKEN_SECRET", "XMPPGW_LISTEN"} {
			same[k] = env[k]
		}
		if shared == nil {
			shared = same
		}
		require.Equal(t, shared, same, "%s differs from the other nodes", name)
		require.NotNil(t, n.Healthcheck)
		require.Equal(t, []string{"CMD", "/usr/local/bin/xmppgw", "healthcheck"}, n.Healthcheck.Test)
	}

	redis := c.Services[redisHost]
	require.Regexp(t, `^redis:\d+\.\d+`, redis.Image, "pin the Redis version")
	require.Contains(t, redis.Expose, redisPort)
	require.Contains(t, redis.Command, redisPort)
	require.NotNil(t, redis.Healthcheck)

	// The balancer: one server line per node, on the node's API port, with
	// /readyz as the check, and the published port is the one it binds.
	lb := c.Services["balancer"]
	require.Regexp(t, `^haproxy:\d+\.\d+`, lb.Image, "pin the HAProxy version")
	cfg, err := os.ReadFile("compose/haproxy.cfg")
	require.NoError(t, err)
	require.Contains(t, lb.Volumes, "./compose/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro")
	require.Regexp(t, `(?m)^\s*option httpchk GET /readyz$`, string(cfg))
	_, apiPort, err := net.SplitHostPort(shared["XMPPGW_LISTEN"])
	require.NoError(t, err)
	servers := regexp.MustCompile(`(?m)^\s*server (\S+) (\S+) check`).FindAllStringSubmatch(string(cfg), -1)
	require.Len(t, servers, len(nodes))
	for _, s := range servers {
		n, ok := nodes[s[1]]
		require.True(t, ok, "haproxy server %s is not a node", s[1])
		require.Equal(t, s[1]+":"+apiPort, s[2])
		require.Contains(t, n.Expose, apiPort)
		require.Contains(t, lb.DependsOn, s[1])
	}
	bind := regexp.MustCompile(`(?m)^\s*bind :(\d+)$`).FindStringSubmatch(string(cfg))
	require.NotNil(t, bind)
	require.Len(t, lb.Ports, 1)
	require.True(t, strings.HasSuffix(lb.Ports[0], ":"+bind[1]), "published %v, HAProxy binds %s", lb.Ports, bind[1])
	require.True(t, strings.HasPrefix(lb.Ports[0], "127.0.0.1:"), "loopback only, as in docker-compose.yml")
}
