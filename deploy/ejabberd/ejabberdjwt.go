// Package ejabberdjwt carries deploy/ejabberd/ejabberd-jwt.yml, the
// ejabberd options for the gateway's on-behalf token logins
// (docs/admin-login.md), so the test harness (internal/ejabberd) runs
// ejabberd with the very options the deployment snippet documents.
package ejabberdjwt

import _ "embed"

// Config is ejabberd-jwt.yml: auth_method, jwt_key and jwt_jid_field.
//
//go:embed ejabberd-jwt.yml
var Config []byte
