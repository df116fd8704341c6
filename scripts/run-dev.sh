#!/usr/bin/env bash
# `make run`: a throwaway local Prosody with demo users, then the gateway.
# Ctrl-C stops both. Data lives in .dev/ (make clean removes it).
set -euo pipefail
cd "$(dirname "$0")/.."

DEV_DIR=${DEV_DIR:-.dev}
XMPP_PORT=${XMPP_PORT:-5222}
mkdir -p "$DEV_DIR"
go build -o "$DEV_DIR/devprosody" ./cmd/devprosody
go build -o "$DEV_DIR/xmppgw" ./cmd/xmppgw

# A per-checkout secret shared by the dev Prosody's token auth module and the
# gateway, so admin logins on a user's behalf work out of the box.
secret_file="$DEV_DIR/xmpp-token.secret"
[ -s "$secret_file" ] || head -c 48 /dev/urandom | base64 | tr -d '\n' > "$secret_file"
chmod 600 "$secret_file"
export XMPPGW_XMPP_TOKEN_SECRET_FILE="$secret_file"

# The demo passwords go to devprosody in a file, not on its command line,
# which anyone on the machine can read with ps.
users_file="$DEV_DIR/prosody-users"
(umask 077 && printf '%s\n' alice:demo bob:demo carol:demo system:demo > "$users_file")
chmod 600 "$users_file"

ready="$DEV_DIR/prosody.ready"
rm -f "$ready"
XMPPGW_XMPP_TOKEN_SECRET="$(cat "$secret_file")" "$DEV_DIR/devprosody" -dir "$DEV_DIR/prosody" \
  -port "$XMPP_PORT" -domain localhost -users-file "$users_file" > "$ready" &
prosody_pid=$!
gw_pid=""
cleanup() {
  [ -n "$gw_pid" ] && kill -TERM "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null
  kill -TERM "$prosody_pid" 2>/dev/null && wait "$prosody_pid" 2>/dev/null
  exit 0
}
trap cleanup INT TERM

for _ in $(seq 1 150); do
  grep -q 'prosody ready' "$ready" 2>/dev/null && break
  kill -0 "$prosody_pid" 2>/dev/null || { echo "prosody failed to start" >&2; exit 1; }
  sleep 0.1
done
grep -q 'prosody ready' "$ready" || { echo "prosody did not become ready" >&2; kill "$prosody_pid"; exit 1; }
cat "$ready"

export XMPPGW_XMPP_ADDR="127.0.0.1:$XMPP_PORT"
export XMPPGW_XMPP_DOMAIN=localhost
export XMPPGW_XMPP_TLS=starttls
export XMPPGW_XMPP_CA_FILE="$DEV_DIR/prosody/cert.pem"
export XMPPGW_LISTEN=${XMPPGW_LISTEN:-127.0.0.1:8080}
export XMPPGW_ADMIN_USER=${XMPPGW_ADMIN_USER:-admin}
export XMPPGW_ADMIN_PASSWORD=${XMPPGW_ADMIN_PASSWORD:-admin-demo-password}
export XMPPGW_NOTIFY_FROM=${XMPPGW_NOTIFY_FROM:-system}
echo "gateway on http://$XMPPGW_LISTEN  (users alice, bob, carol; password demo; admin $XMPPGW_ADMIN_USER / $XMPPGW_ADMIN_PASSWORD)"
"$DEV_DIR/xmppgw" &
gw_pid=$!
wait "$gw_pid"
cleanup
