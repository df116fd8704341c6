// Package prosodyauth carries the Prosody 0.12 authentication module that
// lets the gateway log in on a user's behalf with a short-lived HS256 JWT
// (see mod_auth_xmppgw_jwt.lua and docs/admin-login.md), so that the test
// harness and installers can write it out without guessing paths.
package prosodyauth

import _ "embed"

// ModuleName is the Prosody module name; install Module as
// "mod_" + ModuleName + ".lua" in a directory listed in plugin_paths and set
// authentication = "xmppgw_jwt".
const ModuleName = "auth_xmppgw_jwt"

// FileName is the file name Prosody looks for: "mod_" + ModuleName + ".lua".
const FileName = "mod_" + ModuleName + ".lua"

// Module is the Lua source of mod_auth_xmppgw_jwt.
//
//go:embed mod_auth_xmppgw_jwt.lua
var Module []byte
