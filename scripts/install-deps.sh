#!/usr/bin/env bash
# Installs what the tests and `make run` need, from Debian packages.
#   scripts/install-deps.sh              # = prosody
#   scripts/install-deps.sh prosody redis ejabberd chromium
# Idempotent and silent when everything is present. The harnesses
# (internal/prosody, internal/ejabberd, internal/redistest) run their own
# throwaway servers, so a system service started by a package is stopped
# and disabled again (and policy-rc.d keeps it from starting meanwhile).
set -euo pipefail

# name -> apt package; name -> command(s) whose presence means "installed".
declare -A PKG=(
  [prosody]=prosody
  [redis]=redis-server
  [chromium]=chromium
  [ejabberd]=ejabberd
)
declare -A CHECK=(
  [prosody]="prosody prosodyctl"
  [redis]="redis-server redis-cli"
  [chromium]="chromium|chromium-browser"
  [ejabberd]="ejabberdctl"
)
# Packages whose Debian service must not keep running.
declare -A SERVICE=(
  [prosody]=prosody
  [redis]=redis-server
  [ejabberd]=ejabberd
)

log() { echo "install-deps: $*"; }

# have NAME: every space-separated entry must exist; an entry may list
# alternatives separated by '|'. Unknown names fall back to dpkg.
have() {
  local name=$1 spec entry alt ok
  spec=${CHECK[$name]:-}
  if [ -z "$spec" ]; then
    dpkg-query -W -f='${Status}' "${PKG[$name]:-$name}" 2>/dev/null | grep -q 'install ok installed'
    return
  fi
  for entry in $spec; do
    ok=false
    IFS='|' read -r -a alts <<<"$entry"
    for alt in "${alts[@]}"; do
      if command -v "$alt" >/dev/null 2>&1; then ok=true; break; fi
    done
    $ok || return 1
  done
}

SUDO=()
need_root() {
  [ "$(id -u)" -eq 0 ] && return 0
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    log "need root (or sudo) to install: $*" >&2
    exit 1
  fi
}

# Stop and disable a Debian service, whatever init tooling exists.
stop_service() {
  local svc=$1
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    "${SUDO[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
  if command -v invoke-rc.d >/dev/null 2>&1; then
    "${SUDO[@]}" invoke-rc.d "$svc" stop >/dev/null 2>&1 || true
  elif command -v service >/dev/null 2>&1; then
    "${SUDO[@]}" service "$svc" stop >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/$svc" ]; then
    "${SUDO[@]}" "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
  fi
  if command -v update-rc.d >/dev/null 2>&1; then
    "${SUDO[@]}" update-rc.d "$svc" disable >/dev/null 2>&1 || true
  fi
  if [ "$svc" = prosody ]; then
    kill_system_prosody
  fi
  if [ "$svc" = redis-server ]; then
    kill_system_redis
  fi
}

# Kill the Debian redis-server (it writes /run/redis/redis-server.pid; the
# harness's instances write no pid file), should the package have started it
# where no init tooling above could stop it.
kill_system_redis() {
  local pidfile=/run/redis/redis-server.pid pid
  [ -r "$pidfile" ] || return 0
  pid=$(cat "$pidfile" 2>/dev/null || true)
  case "$pid" in ''|*[!0-9]*) return 0 ;; esac
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = redis-server ]; then
    log "stopping system redis-server (pid $pid)"
    "${SUDO[@]}" kill "$pid" 2>/dev/null || true
  fi
}

# Kill a system Prosody (started without --config, i.e. using /etc/prosody)
# but never a harness instance (always started with --config <dir>/...).
kill_system_prosody() {
  local pid cmdline
  command -v pgrep >/dev/null 2>&1 || return 0
  for pid in $(pgrep -f '/usr/bin/prosody' || true); do
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
    case "$cmdline" in
      *--config\ /etc/prosody/*) ;;
      *--config*) continue ;;
    esac
    case "$cmdline" in
      *prosodyctl*|'') continue ;;
    esac
    log "stopping system prosody (pid $pid)"
    "${SUDO[@]}" kill "$pid" 2>/dev/null || true
  done
}

names=("$@")
[ ${#names[@]} -eq 0 ] && names=(prosody)

missing=()
for name in "${names[@]}"; do
  have "$name" || missing+=("$name")
done
[ ${#missing[@]} -eq 0 ] && exit 0

pkgs=()
for name in "${missing[@]}"; do
  pkgs+=("${PKG[$name]:-$name}")
done
need_root "${pkgs[@]}"

# Keep services from starting during the install where nothing else does
# (Debian's invoke-rc.d and deb-systemd-invoke honour policy-rc.d).
policy=/usr/sbin/policy-rc.d
created_policy=false
cleanup() {
  if $created_policy; then
    "${SUDO[@]}" rm -f "$policy"
    created_policy=false
  fi
}
trap cleanup EXIT
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# temporary, from xmppgw scripts/install-deps.sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
  "${SUDO[@]}" chmod 755 "$policy"
  created_policy=true
fi

log "installing ${pkgs[*]} (apt-get)"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
cleanup # before stopping services: policy-rc.d also forbids "stop"

for name in "${missing[@]}"; do
  if [ -n "${SERVICE[$name]:-}" ]; then
    stop_service "${SERVICE[$name]}"
  fi
  if have "$name"; then
    log "installed $name"
  else
    log "$name still missing after installing ${PKG[$name]:-$name}" >&2
    exit 1
  fi
done
