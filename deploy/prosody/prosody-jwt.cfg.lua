-- Prosody 0.12: let xmppgw open sessions on a user's behalf with a
-- short-lived HS256 token (docs/admin-login.md). Put these lines in the
-- global section of /etc/prosody/prosody.cfg.lua (before the first
-- VirtualHost), replacing `authentication = "internal_hashed"`; existing
-- accounts keep working unchanged (same "accounts" store).
--
-- Install the module once:
--   install -m 644 deploy/prosody/mod_auth_xmppgw_jwt.lua /usr/local/lib/prosody/modules/
-- and the secret (the same value the gateway gets as XMPPGW_XMPP_TOKEN_SECRET):
--   umask 027; openssl rand -base64 48 > /etc/prosody/xmppgw-jwt.secret
--   chgrp prosody /etc/prosody/xmppgw-jwt.secret
-- then `systemctl restart prosody` and look for errors from
-- auth_xmppgw_jwt in /var/log/prosody/prosody.err.

-- Debian's default already lists this directory.
plugin_paths = { "/usr/local/lib/prosody/modules" }

authentication = "xmppgw_jwt"

-- The HMAC key: the file's contents with surrounding whitespace removed, used
-- as they are (not base64-decoded). At least 32 bytes, or the module refuses
-- to load and every login fails. A relative path is relative to this file.
xmppgw_jwt_secret_file = "/etc/prosody/xmppgw-jwt.secret"
-- or inline (then keep this file unreadable to others):
-- xmppgw_jwt_secret = "..."

-- The token travels as a SASL PLAIN password: never over plaintext except on
-- loopback. These are Prosody's defaults; keep them.
c2s_require_encryption = true
allow_unencrypted_plain_auth = false
