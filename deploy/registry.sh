#!/usr/bin/env bash
# The image registry between the build engine and the runtime engine, in the foreground.
#
#   deploy/registry.sh                  # serve (make up's Procfile runs this)
#   deploy/registry.sh link | unlink    # open (close) its port to the build engine; root
#   deploy/registry.sh garbage-collect  # reclaim the blobs of deleted images (stop serving first)
#
# The build engine pushes built images here and the engine that runs the spaces pulls them by
# digest; builders on other hosts push here too. It always asks for a password (htpasswd), so that
# nothing reaches the images without one; the builder passes it per call and never to a build.
#
# Environment (defaults in brackets):
#   SPACEDOCK_REGISTRY           host:port it listens on [127.0.0.1:<SPACEDOCK_PORT + 2>]
#   SPACEDOCK_REGISTRY_USER      [spacedock]
#   SPACEDOCK_REGISTRY_PASSWORD  [made once, kept in <data folder>/registry/password]
#   SPACEDOCK_DATA_DIR           storage goes to <data folder>/registry/storage [./data]
# TLS: put it behind Caddy or another TLS proxy when builders on other hosts push to it.
set -euo pipefail

log() { printf 'registry: %s\n' "$*" >&2; }
die() { printf 'registry: ERROR: %s\n' "$*" >&2; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DATA=${SPACEDOCK_DATA_DIR:-$here/../data}
mkdir -p "$DATA"
DATA=$(cd "$DATA" && pwd)
PORT=${SPACEDOCK_PORT:-8080}
ADDR=${SPACEDOCK_REGISTRY:-127.0.0.1:$((PORT + 2))}
USER_NAME=${SPACEDOCK_REGISTRY_USER:-spacedock}
DIR=$DATA/registry
mkdir -p "$DIR/storage"
chmod 0700 "$DIR"

need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
if ((${#need[@]})); then
    if [[ $(id -u) -eq 0 && -r /etc/debian_version ]]; then
        log "installing ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y --no-install-recommends "${need[@]}" >&2 \
            || { apt-get update >&2 && apt-get install -y --no-install-recommends "${need[@]}" >&2; }
    else
        die "missing ${need[*]}: install Debian's docker-registry and apache2-utils (or any Docker
  registry v2 with htpasswd auth, and set SPACEDOCK_REGISTRY to it)"
    fi
fi

# The password: given, or made once (the settings read the same file).
if [[ -n "${SPACEDOCK_REGISTRY_PASSWORD:-}" ]]; then
    PASSWORD=$SPACEDOCK_REGISTRY_PASSWORD
else
    if [[ ! -s $DIR/password ]]; then
        (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '/+=\n' >"$DIR/password.new" && mv "$DIR/password.new" "$DIR/password")
    fi
    PASSWORD=$(cat "$DIR/password")
fi
(umask 077 && htpasswd -Bbn "$USER_NAME" "$PASSWORD" >"$DIR/htpasswd")

cat >"$DIR/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $DIR/storage
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: $ADDR
  secret: $(head -c 24 /dev/urandom | base64)
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: spacedock
    path: $DIR/htpasswd
EOF
chmod 0600 "$DIR/config.yml"

# The build engine pushes here through its link to the host (deploy/build-engine.sh): the host's
# end of the link forwards this registry's port, and only it, to this listener. Needs root; the
# systemd unit runs `link` and `unlink` with it, make up and the suite run this script as root.
NS=${SPACEDOCK_BUILD_NETNS:-spacedock-build}
HOST_IF="sdb-${NS:0:8}-h"
LINK=${SPACEDOCK_BUILD_LINK:-198.18.250.0/30}
prefix=${LINK%/*}; last=${prefix##*.}; prefix=${prefix%.*}
LINK_ADDR="$prefix.$((last + 1))"
PORT_ONLY=${ADDR##*:}
DNAT=(PREROUTING -i "$HOST_IF" -d "$LINK_ADDR" -p tcp --dport "$PORT_ONLY" -j DNAT --to-destination "$ADDR")
ACCEPT=(INPUT -i "$HOST_IF" -d "${ADDR%:*}" -p tcp --dport "$PORT_ONLY" -j ACCEPT)
link() {
    if [[ $(id -u) -ne 0 ]]; then
        log "not root: the build engine reaches this registry once 'deploy/registry.sh link' ran as root (the systemd unit does)"
        return 0
    fi
    if ! ip link show "$HOST_IF" >/dev/null 2>&1; then
        log "no build engine link ($HOST_IF): start deploy/build-engine.sh, then run 'deploy/registry.sh link'"
        return 0
    fi
    iptables -w -t nat -C "${DNAT[@]}" 2>/dev/null || iptables -w -t nat -A "${DNAT[@]}"
    iptables -w -C "${ACCEPT[@]}" 2>/dev/null || iptables -w -I INPUT 1 "${ACCEPT[@]:1}"
    log "the build engine pushes to $LINK_ADDR:$PORT_ONLY"
}
unlink() {
    [[ $(id -u) -eq 0 ]] || return 0
    while iptables -w -t nat -D "${DNAT[@]}" 2>/dev/null; do :; done
    while iptables -w -D "${ACCEPT[@]}" 2>/dev/null; do :; done
}

case "${1:-serve}" in
    serve)
        link
        log "serving on $ADDR (storage $DIR/storage)"
        docker-registry serve "$DIR/config.yml" &
        child=$!
        trap 'kill -TERM "$child" 2>/dev/null; wait "$child" || true; unlink; exit 0' TERM INT
        wait "$child" || status=$?
        unlink
        exit "${status:-0}" ;;
    link) link ;;
    unlink) unlink ;;
    garbage-collect)
        exec docker-registry garbage-collect --delete-untagged "$DIR/config.yml" ;;
    *) die "unknown command: $1 (serve, link, unlink or garbage-collect)" ;;
esac
