package ejabberd

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"

	"go.yaml.in/yaml/v3"

	ejabberdjwt "github.com/xmppgw/xmppgw/deploy/ejabberd"
)

// config is ejabberd.yml. YAML is a superset of JSON, so the file is
// written with encoding/json: every value is quoted by the encoder,
// whatever the paths and secrets contain.
type config map[string]any

// configText renders ejabberd.yml for s. All paths are absolute and inside
// s.Dir.
func (s *Server) configText() ([]byte, error) {
	c2s := map[string]any{
		"port": s.Port, "ip": "127.0.0.1", "module": "ejabberd_c2s",
		// The default backlog of 5 gives multi-second login tails when
		// tests log in in parallel (docs in /work/shared/reference).
		"backlog":         1024,
		"shaper":          "none",
		"access":          "c2s",
		"starttls":        true,
		"max_stanza_size": 262144,
	}
	api := map[string]any{
		"port": s.apiPort, "ip": "127.0.0.1", "module": "ejabberd_http",
		"request_handlers": map[string]any{"/api": "mod_http_api"},
	}
	auth := []string{"internal"} // replaced by the snippet's with JWTSecret
	c := config{
		"hosts":            []string{s.Domain},
		"loglevel":         "info",
		"log_rotate_count": 0,
		"certfiles":        []string{s.pemFile()},
		"listen":           []any{c2s, api},
		"s2s_access":       "none",
		"acl": map[string]any{
			"local":    map[string]any{"user_regexp": ""},
			"loopback": map[string]any{"ip": []string{"127.0.0.0/8"}},
		},
		"access_rules": map[string]any{
			"local":             map[string]any{"allow": "local"},
			"c2s":               map[string]any{"allow": "all"},
			"muc_create":        map[string]any{"allow": "local"},
			"pubsub_createnode": map[string]any{"allow": "local"},
		},
		// The harness's own HTTP API (users, node set-up) answers loopback
		// callers only; it listens on 127.0.0.1 anyway.
		"api_permissions": map[string]any{
			"harness": map[string]any{
				"who":  map[string]any{"ip": "127.0.0.1/8"},
				"what": []string{"*"},
			},
		},
		"shaper_rules": map[string]any{
			"max_user_sessions":         10000,
			"max_user_offline_messages": 100000,
		},
		"modules": map[string]any{
			"mod_adhoc":        map[string]any{},
			"mod_admin_extra":  map[string]any{}, // change_password, send_stanza (harness API)
			"mod_blocking":     map[string]any{},
			"mod_caps":         map[string]any{},
			"mod_carboncopy":   map[string]any{},
			"mod_client_state": map[string]any{},
			"mod_disco":        map[string]any{},
			"mod_last":         map[string]any{},
			// default: always archives every 1:1 message, like Prosody's
			// default_archive_policy = true in internal/prosody.
			"mod_mam": map[string]any{"default": "always"},
			"mod_muc": map[string]any{
				"access_create":        "muc_create",
				"default_room_options": map[string]any{"mam": true},
			},
			"mod_offline": map[string]any{"access_max_user_messages": "max_user_offline_messages"},
			"mod_ping":    map[string]any{},
			"mod_privacy": map[string]any{},
			"mod_private": map[string]any{},
			"mod_pubsub": map[string]any{
				"access_createnode": "pubsub_createnode",
				"plugins":           []string{"flat", "pep"},
			},
			"mod_register":      map[string]any{"access": "none"}, // no in-band sign-up; the harness creates accounts
			"mod_roster":        map[string]any{"versioning": true},
			"mod_stream_mgmt":   map[string]any{},
			"mod_vcard":         map[string]any{"search": true},
			"mod_vcard_xupdate": map[string]any{},
			"mod_version":       map[string]any{"show_os": false},
		},
	}
	c["auth_method"] = auth
	if s.JWTSecret != "" {
		// ejabberd_auth_jwt with the options of the deployment snippet
		// (deploy/ejabberd/ejabberd-jwt.yml, docs/admin-login.md); only
		// the key file's path is the harness's own.
		var snippet map[string]any
		if err := yaml.Unmarshal(ejabberdjwt.Config, &snippet); err != nil {
			return nil, fmt.Errorf("deploy/ejabberd/ejabberd-jwt.yml: %w", err)
		}
		for _, key := range []string{"auth_method", "jwt_key", "jwt_jid_field"} {
			v, ok := snippet[key]
			if !ok {
				return nil, fmt.Errorf("deploy/ejabberd/ejabberd-jwt.yml has no %s", key)
			}
			c[key] = v
		}
		c["jwt_key"] = s.jwkFile()
	}
	return json.MarshalIndent(c, "", "  ")
}

// jwk is the JSON Web Key ejabberd's jwt_key file holds: the secret's bytes
// as base64url without padding (RFC 7518 §6.4).
func jwk(secret string) ([]byte, error) {
	return json.Marshal(map[string]string{"kty": "oct", "k": base64.RawURLEncoding.EncodeToString([]byte(secret))})
}

// erlString returns s as an Erlang string literal for the command line
// (`-mnesia dir "..."`); Start only accepts directories whose names need
// no escaping beyond what strconv.Quote does for printable ASCII.
func erlString(s string) string { return strconv.Quote(s) }
