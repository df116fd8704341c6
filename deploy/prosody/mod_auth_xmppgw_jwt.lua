-- mod_auth_xmppgw_jwt: Prosody 0.12 authentication provider for xmppgw.
--
-- Behaves exactly like mod_auth_internal_hashed (SCRAM-hashed passwords in
-- the "accounts" store, create/set/delete users, SCRAM-SHA-1 and PLAIN,
-- `prosodyctl register`), and in addition accepts, as a SASL PLAIN password,
-- a short-lived HS256 JWT signed with a secret shared with the gateway:
--
--   header  {"alg":"HS256","typ":"JWT"}
--   claims  {"jid":"alice@example.com","exp":<unix>,"iat":<unix>}
--
-- so that middleware holding the secret can open a session for a user
-- without the user's password. See docs/admin-login.md.
--
-- Config (global or per VirtualHost):
--   authentication = "xmppgw_jwt"
--   xmppgw_jwt_secret = "<at least 32 bytes>"      -- or:
--   xmppgw_jwt_secret_file = "/etc/prosody/xmppgw-jwt.secret"
--     (contents, whitespace-trimmed; a relative path is relative to the
--     config file's directory)
-- The secret's bytes are the HMAC key as they are (no base64 decoding).
--
-- A token is accepted when (and only when):
--   * util.jwt.verify(secret, token) succeeds: three base64url parts,
--     header alg exactly "HS256" (so "none" and others are refused),
--     HMAC-SHA256 signature compared in constant time;
--   * the payload is a JSON object whose "jid" is a string equal to
--     nodeprep(username).."@"..module.host;
--   * "exp" is a number with now - 30 < exp <= now + 3600 + 30
--     (30 s clock skew each way; tokens valid for more than an hour are
--     refused so that they stay short-lived);
--   * the account exists (internal_hashed's user_exists).
-- Other claims (iat, nbf, ...) are not checked. Anything that is not an
-- acceptable token goes on to the normal password check.
--
-- How it reuses internal_hashed instead of copying it (Prosody 0.12 APIs):
--   * module:depends("auth_internal_hashed") loads that module on this host
--     (core/moduleapi.lua, api:depends). Its module:provides("auth", provider)
--     adds an "auth-provider" item named "internal_hashed"; core/usermanager.lua
--     only installs the provider whose name equals the `authentication`
--     option, so that item stays inactive.
--   * We fetch that provider table with module:get_host_items("auth-provider")
--     (it is marked _provided_by = "auth_internal_hashed") and copy its
--     functions into our own table. We copy rather than setmetatable():
--     usermanager does setmetatable(provider, provider_mt) on the active
--     provider, which would replace any metatable of ours.
--   * Only test_password is replaced. internal_hashed's get_sasl_handler is
--     reused as is: its plain_test calls usermanager.test_password(), which
--     dispatches to the host's active provider, i.e. to our test_password;
--     its SCRAM callback reads the stored keys directly, so tokens never
--     work over SCRAM (they cannot: SCRAM never shows the server the
--     password).
--   * util.sasl.plain (util/sasl/plain.lua) has already SASLprep'd the
--     password and nodeprep'd the username before plain_test is called.
--
-- Nothing here logs a password or a token.

local jwt_verify = require "util.jwt".verify;
local nodeprep = require "util.encodings".stringprep.nodeprep;
local os_time = os.time;
local pcall, type = pcall, type;

local host = module.host;
local MIN_SECRET_BYTES = 32;
local CLOCK_SKEW = 30;      -- seconds of clock difference tolerated
local MAX_LIFETIME = 3600;  -- exp may be at most this far ahead

local function fail(message)
	module:log("error", "%s", message);
	error(message, 0);
end

-- The shared secret -------------------------------------------------------

local secret = module:get_option_string("xmppgw_jwt_secret");
local secret_file = module:get_option_path("xmppgw_jwt_secret_file", nil, "config");
if secret and secret_file then
	fail("set only one of xmppgw_jwt_secret and xmppgw_jwt_secret_file");
end
if secret_file then
	local f, err = io.open(secret_file, "rb");
	if not f then
		fail(("cannot read xmppgw_jwt_secret_file: %s"):format(err));
	end
	secret = f:read("*a"); -- "*a": Prosody 0.12 also runs on Lua 5.1/LuaJIT
	f:close();
	secret = secret and secret:match("^%s*(.-)%s*$");
end
if not secret or secret == "" then
	fail("no secret configured: set xmppgw_jwt_secret or xmppgw_jwt_secret_file"
		.." (at least "..MIN_SECRET_BYTES.." bytes, e.g. `openssl rand -base64 48`)");
end
if #secret < MIN_SECRET_BYTES then
	fail(("the xmppgw_jwt secret is %d bytes; at least %d are required"):format(#secret, MIN_SECRET_BYTES));
end

-- The wrapped internal_hashed provider --------------------------------------

module:depends("auth_internal_hashed");
local inner;
for _, item in ipairs(module:get_host_items("auth-provider")) do
	if item._provided_by == "auth_internal_hashed" then
		inner = item;
		break;
	end
end
if not inner then
	fail("mod_auth_internal_hashed did not provide an auth provider on "..host);
end

local provider = {};
for key, value in pairs(inner) do
	if key ~= "name" and key ~= "_provided_by" then
		provider[key] = value;
	end
end

-- Token check ----------------------------------------------------------------

-- check_token returns true for an acceptable token, nil for a password that
-- does not look like a JWT at all (silently left to the password check),
-- and false plus a reason for a token-shaped password that was refused.
local function check_token(username, password)
	-- util.jwt.verify can raise on undecodable base64 (json.decode(nil)).
	local ok, valid, payload = pcall(jwt_verify, secret, password);
	if not ok then
		return nil;
	end
	if not valid then
		-- payload is the error code here; these two mean "not a JWT".
		if payload == "invalid-encoding" or payload == "invalid-header" then
			return nil;
		end
		return false, payload; -- unsupported-algorithm, signature-mismatch, json-decode-error
	end
	if type(payload) ~= "table" then
		return false, "claims are not a JSON object";
	end
	local node = nodeprep(username);
	if not node or node == "" then
		return false, "invalid username";
	end
	if type(payload.jid) ~= "string" or payload.jid ~= node.."@"..host then
		return false, "jid claim does not match the user";
	end
	local exp, now = payload.exp, os_time();
	if type(exp) ~= "number" then
		return false, "exp claim missing or not a number";
	end
	if exp <= now - CLOCK_SKEW then
		return false, "token expired";
	end
	if exp > now + MAX_LIFETIME + CLOCK_SKEW then
		return false, "exp is more than an hour ahead";
	end
	if not inner.user_exists(node) then
		return false, "no such account";
	end
	return true;
end

function provider.test_password(username, password)
	if type(password) == "string" then
		local accepted, reason = check_token(username, password);
		if accepted then
			module:log("debug", "token login for %s", username);
			return true;
		elseif accepted == false then
			module:log("info", "rejected login token for %s: %s", username, reason);
		end
	end
	return inner.test_password(username, password);
end

module:provides("auth", provider);
