-- Prosody 0.12 for deploy/docker-compose.yml: one VirtualHost, client
-- connections only, STARTTLS required, the certificate made by the compose
-- "certs" service. ENV_* are the container's environment variables.

local domain = ENV_XMPP_DOMAIN or "localhost"

pidfile = "/var/run/prosody/prosody.pid"
data_path = "/var/lib/prosody"
log = { info = "*console" }

interfaces = { "*" }
c2s_ports = { 5222 }
c2s_direct_tls_ports = { }
s2s_ports = { }
http_ports = { }
https_ports = { }

modules_enabled = {
	"roster", "saslauth", "tls", "disco", "carbons", "pep", "private",
	"blocklist", "vcard4", "vcard_legacy", "version", "uptime", "time",
	"ping", "mam", "csi_simple",
}
modules_disabled = { "s2s" }

-- Passwords (and on-behalf tokens) only ever cross TLS.
c2s_require_encryption = true
allow_unencrypted_plain_auth = false

storage = "internal"
archive_expires_after = "1w"

-- With a shared secret the gateway may log in on a user's behalf
-- (docs/admin-login.md); the module is mounted by the compose file.
local token_secret = ENV_XMPPGW_XMPP_TOKEN_SECRET
if token_secret and token_secret ~= "" then
	plugin_paths = { "/usr/local/lib/prosody/xmppgw" }
	authentication = "xmppgw_jwt"
	xmppgw_jwt_secret = token_secret
else
	authentication = "internal_hashed"
end

VirtualHost (domain)
	ssl = { certificate = "/etc/prosody/certs/xmpp.crt", key = "/etc/prosody/certs/xmpp.key" }
