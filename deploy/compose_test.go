// Package deploy_test checks the deployment files that cannot run here
// (no Docker in CI): docker-compose.yml must wire Prosody and the gateway
// with settings the gateway really has, and the Dockerfile must keep its
// HEALTHCHECK.
package deploy_test

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

// composeService has exactly the keys the file uses: with KnownFields a
// misspelt or unexpected key fails the test instead of being ignored.
type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Init        bool              `yaml:"init"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Expose      []string          `yaml:"expose"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test        []string `yaml:"test"`
		Interval    string   `yaml:"interval"`
		Timeout     string   `yaml:"timeout"`
		Retries     int      `yaml:"retries"`
		StartPeriod string   `yaml:"start_period"`
	} `yaml:"healthcheck"`
	Entrypoint  []string `yaml:"entrypoint"`
	Command     []string `yaml:"command"`
	ReadOnly    bool     `yaml:"read_only"`
	CapDrop     []string `yaml:"cap_drop"`
	SecurityOpt []string `yaml:"security_opt"`
	Restart     string   `yaml:"restart"`
}

func loadCompose(t *testing.T) composeFile { return loadYAML[composeFile](t, "docker-compose.yml") }

// loadYAML decodes a compose file into T, strictly.
func loadYAML[T any](t *testing.T, name string) T {
	t.Helper()
	raw, err := os.ReadFile(name)
	require.NoError(t, err)
	var c T
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true) // a misspelt key is an error, not a silent no-op
	require.NoError(t, dec.Decode(&c))
	return c
}

// gatewayEnv lists the variables cmd/xmppgw reads: every env: "XMPPGW_…"
// option, plus NAME_FILE for secrets.
func gatewayEnv(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile("../cmd/xmppgw/config.go")
	require.NoError(t, err)
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`\{([^{}]*)env: "(XMPPGW_[A-Z0-9_]+)"([^{}]*)\}`).FindAllStringSubmatch(string(src), -1) {
		known[m[2]] = true
		if strings.Contains(m[1]+m[3], "secret: true") {
			known[m[2]+"_FILE"] = true
		}
	}
	require.Greater(t, len(known), 20, "could not read the options of cmd/xmppgw/config.go")
	return known
}

// value resolves "${NAME:-default}" to its default, as compose does when
// NAME is unset.
func value(v string) string {
	return regexp.MustCompile(`\$\{[A-Z0-9_]+:-([^}]*)\}`).ReplaceAllString(v, "$1")
}

func TestCompose_GatewayService(t *testing.T) {
	c := loadCompose(t)
	gw, ok := c.Services["xmppgw"]
	require.True(t, ok, "service xmppgw")
	require.NotNil(t, gw.Build)
	require.Equal(t, "..", gw.Build.Context)
	_, err := os.Stat(filepath.Join(gw.Build.Context, gw.Build.Dockerfile))
	require.NoError(t, err, "the build's Dockerfile")

	known := gatewayEnv(t)
	for name := range gw.Environment {
		require.True(t, known[name], "%s is not a setting of cmd/xmppgw (config.go)", name)
	}
	for _, name := range []string{"XMPPGW_LISTEN", "XMPPGW_XMPP_ADDR", "XMPPGW_XMPP_DOMAIN", "XMPPGW_XMPP_TLS", "XMPPGW_XMPP_CA_FILE"} {
		require.NotEmpty(t, gw.Environment[name], name)
	}
	require.Equal(t, "starttls", gw.Environment["XMPPGW_XMPP_TLS"], "a non-loopback XMPP server needs TLS")

	// The published port is the one the gateway listens on.
	_, listenPort, err := net.SplitHostPort(gw.Environment["XMPPGW_LISTEN"])
	require.NoError(t, err)
	require.NotEmpty(t, gw.Ports)
	published := false
	for _, p := range gw.Ports {
		published = published || strings.HasSuffix(p, ":"+listenPort)
	}
	require.True(t, published, "ports %v do not publish the listen port %s", gw.Ports, listenPort)

	// It reaches Prosody by service name, on the port Prosody serves c2s on.
	host, port, err := net.SplitHostPort(gw.Environment["XMPPGW_XMPP_ADDR"])
	require.NoError(t, err)
	pros, ok := c.Services[host]
	require.True(t, ok, "XMPPGW_XMPP_ADDR names service %q", host)
	require.Contains(t, pros.Expose, port)
	require.Contains(t, gw.DependsOn, host)
	cfg, err := os.ReadFile("compose/prosody.cfg.lua")
	require.NoError(t, err)
	require.Contains(t, string(cfg), "c2s_ports = { "+port+" }")

	// Same domain on both sides, and the CA file is the certificate Prosody serves.
	require.Equal(t, value(gw.Environment["XMPPGW_XMPP_DOMAIN"]), value(pros.Environment["XMPP_DOMAIN"]))
	require.Equal(t, value(gw.Environment["XMPPGW_XMPP_DOMAIN"]), value(c.Services["certs"].Environment["XMPP_DOMAIN"]))
	require.True(t, strings.HasPrefix(gw.Environment["XMPPGW_XMPP_CA_FILE"], "/certs/"))
	require.Contains(t, gw.Volumes, "certs:/certs:ro")
	require.Contains(t, pros.Volumes, "certs:/etc/prosody/certs:ro")
	require.Contains(t, string(cfg), "/etc/prosody/certs/"+filepath.Base(gw.Environment["XMPPGW_XMPP_CA_FILE"]))

	// Health: the subcommand, which works in the distroless image.
	require.NotNil(t, gw.Healthcheck)
	require.Equal(t, []string{"CMD", "/usr/local/bin/xmppgw", "healthcheck"}, gw.Healthcheck.Test)
	require.True(t, gw.ReadOnly, "the gateway writes nothing to disk")
}

func TestCompose_ProsodyService(t *testing.T) {
	c := loadCompose(t)
	pros := c.Services["prosody"]
	require.True(t, strings.HasPrefix(pros.Image, "prosody/prosody:"), pros.Image)
	require.NotEqual(t, "prosody/prosody:latest", pros.Image, "pin the Prosody version")
	require.Equal(t, "service_completed_successfully", pros.DependsOn["certs"].Condition)
	require.NotNil(t, pros.Healthcheck)
	require.Equal(t, "service_healthy", c.Services["xmppgw"].DependsOn["prosody"].Condition)
	for _, v := range pros.Volumes {
		src, _, _ := strings.Cut(v, ":")
		if strings.HasPrefix(src, ".") {
			_, err := os.Stat(src)
			require.NoError(t, err, "mounted file %s", src)
		} else {
			require.Contains(t, c.Volumes, src, "named volume %s", src)
		}
	}
	require.Contains(t, strings.Join(pros.Command, "\n"), "prosodyctl register")
	require.Contains(t, pros.Environment["XMPP_USERS"], "alice:")
}

func TestDockerfile_Healthcheck(t *testing.T) {
	raw, err := os.ReadFile("../Dockerfile")
	require.NoError(t, err)
	df := string(raw)
	require.Regexp(t, `(?m)^HEALTHCHECK .*\\\n\s+CMD \["/usr/local/bin/xmppgw", "healthcheck"\]`, df)
	require.Contains(t, df, "COPY --from=build /out/xmppgw /usr/local/bin/xmppgw")
	require.Contains(t, df, "FROM gcr.io/distroless/static")
}
