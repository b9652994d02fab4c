#!/usr/bin/env bash
# Ensure a Docker engine answers on this host.
#
#   deploy/docker-engine.sh            # exit 0 once `docker info` answers
#
# - If `docker info` already answers: exit 0 at once.
# - Else, as root on Debian: install docker.io if dockerd is missing, make sure
#   iptables works (falls back to iptables-legacy), then start the daemon:
#   `systemctl start docker` where systemd runs the host, else dockerd in the
#   background (own session, survives this shell); wait until it answers.
# - Else: say what to install and exit 1.
#
# Environment:
#   SPACEDOCK_DATA_DIR       dockerd.log goes here when set (else /var/log/spacedock-dockerd.log)
#   SPACEDOCK_DOCKERD_LOG    explicit log file path (wins over the above)
#   SPACEDOCK_DOCKER_BIP     bridge address      (default 198.18.0.1/24)
#   SPACEDOCK_DOCKER_POOL    default address pool (default base=198.19.0.0/16,size=24)
#   SPACEDOCK_DOCKER_WAIT    seconds to wait for the daemon (default 60)
#   SPACEDOCK_DOCKER_MTU     MTU for Docker's networks (default: the MTU of the
#                            host's default-route interface when below 1500)
#   SPACEDOCK_DOCKERD_ARGS   extra arguments for dockerd (word-split)
#
# The bridge and pool flags keep Docker's networks off address ranges that the
# host's own network uses.
set -euo pipefail

log() { printf 'docker-engine: %s\n' "$*" >&2; }
die() { printf 'docker-engine: ERROR: %s\n' "$*" >&2; exit 1; }

# Debian's client (/usr/bin/docker) has BuildKit built in; prefer it.
if [[ -x /usr/bin/docker ]]; then
    DOCKER=/usr/bin/docker
else
    DOCKER=$(command -v docker || true)
fi

docker_answers() {
    [[ -n "$DOCKER" ]] || return 1
    timeout 10 "$DOCKER" info >/dev/null 2>&1
}

# Fast path: nothing to do.
if docker_answers; then
    exit 0
fi

BIP=${SPACEDOCK_DOCKER_BIP:-198.18.0.1/24}
POOL=${SPACEDOCK_DOCKER_POOL:-base=198.19.0.0/16,size=24}
WAIT=${SPACEDOCK_DOCKER_WAIT:-60}
MTU=${SPACEDOCK_DOCKER_MTU:-}
if [[ -z "$MTU" && -r /proc/net/route ]]; then
    # A bridge MTU (1500) above the uplink's drops large packets (TLS stalls in
    # builds and containers); follow the uplink when it is smaller.
    uplink=$(awk '$2 == "00000000" {print $1; exit}' /proc/net/route)
    if [[ -n "$uplink" && -r /sys/class/net/$uplink/mtu ]]; then
        m=$(cat "/sys/class/net/$uplink/mtu")
        if [[ "$m" =~ ^[0-9]+$ ]] && (( m < 1500 )); then MTU=$m; fi
    fi
fi
if [[ -n "${SPACEDOCK_DOCKERD_LOG:-}" ]]; then
    LOGFILE=$SPACEDOCK_DOCKERD_LOG
elif [[ -n "${SPACEDOCK_DATA_DIR:-}" ]]; then
    LOGFILE=$SPACEDOCK_DATA_DIR/dockerd.log
else
    LOGFILE=/var/log/spacedock-dockerd.log
fi

manual_help() {
    cat >&2 <<EOF
docker-engine: no Docker engine answers, and this script cannot start one here ($1).
  Install and start a Docker engine, then run this again. For example:
    Debian/Ubuntu (as root):  apt-get install -y docker.io && (systemctl start docker || dockerd &)
    elsewhere:                https://docs.docker.com/engine/install/
  Spacedock needs: a daemon reachable by \`docker info\`, BuildKit (DOCKER_BUILDKIT=1 docker build,
  or docker buildx), and the user running Spacedock allowed to use the Docker socket.
EOF
    exit 1
}

if [[ $(id -u) -ne 0 ]]; then
    if [[ -n "$DOCKER" ]] && [[ "$(timeout 15 "$DOCKER" info 2>&1 || true)" == *"ermission denied"* ]]; then
        manual_help "a daemon runs, but $(id -un) may not use its socket: add the user to the 'docker' group"
    fi
    manual_help "not root"
fi
[[ -r /etc/debian_version ]] || manual_help "not a Debian-family system"

# One run at a time (two callers starting two daemons would fight over the pidfile).
exec 9>/run/spacedock-docker-engine.lock
flock -w $((WAIT + 120)) 9 || die "another docker-engine.sh holds /run/spacedock-docker-engine.lock"
docker_answers && exit 0   # the other run may have started it

# Is PID a live process (not gone, not a zombie waiting to be reaped)?
live_pid() {
    local state
    state=$(awk '{sub(/.*\) /, ""); print $1}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n "$state" && "$state" != Z ]]
}

# The running dockerd's pid, if any (no procps needed).
dockerd_pid() {
    local f pid
    for f in /proc/[0-9]*/comm; do
        [[ "$(cat "$f" 2>/dev/null)" == dockerd ]] || continue
        pid=${f#/proc/}; pid=${pid%/comm}
        live_pid "$pid" || continue   # a zombie is a daemon that already died
        # Not a second engine with a pidfile of its own (the build engine, deploy/build-engine.sh).
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- '--pidfile' && continue
        echo "$pid"; return 0
    done
    return 1
}

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "$@"; then
        log "apt-get install failed; running apt-get update and trying again"
        apt-get update
        apt-get install -y --no-install-recommends "$@"
    fi
}

# 1. The engine itself.
if ! command -v dockerd >/dev/null 2>&1 || [[ ! -x /usr/bin/docker && -z "$DOCKER" ]]; then
    log "dockerd not found: installing Debian's docker.io"
    apt_install docker.io iptables ca-certificates || die "could not install docker.io with apt-get"
fi
command -v dockerd >/dev/null 2>&1 || die "dockerd still missing after installing docker.io"
[[ -x /usr/bin/docker ]] && DOCKER=/usr/bin/docker
[[ -n "$DOCKER" ]] || DOCKER=$(command -v docker || true)
[[ -n "$DOCKER" ]] || die "no docker client found after installing docker.io"
docker_answers && { log "Docker engine answers"; exit 0; }   # the package's own service may have started it

# 2. iptables: dockerd needs it for the bridge's NAT and port publishing.
#    Debian defaults to iptables-nft; on kernels without nf_tables fall back to legacy.
if ! command -v iptables >/dev/null 2>&1; then
    apt_install iptables || die "could not install iptables"
fi
if ! iptables -t nat -L -n >/dev/null 2>&1; then
    if command -v iptables-legacy >/dev/null 2>&1 && iptables-legacy -t nat -L -n >/dev/null 2>&1; then
        log "iptables ($(readlink -f "$(command -v iptables)")) does not work here; switching to iptables-legacy"
        update-alternatives --set iptables /usr/sbin/iptables-legacy >/dev/null
        update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy >/dev/null 2>&1 || true
    else
        die "neither iptables-nft nor iptables-legacy works on this kernel; dockerd cannot set up its bridge.
  'iptables -t nat -L' says: $(iptables -t nat -L -n 2>&1 | head -n 2 | tr '\n' ' ')"
    fi
fi

# A host run by systemd keeps its daemon under systemd (and its /etc/docker/daemon.json).
if [[ -d /run/systemd/system ]] && systemctl cat docker.service >/dev/null 2>&1; then
    log "systemd host: systemctl start docker"
    systemctl start docker || die "systemctl start docker failed; see: journalctl -u docker"
    deadline=$((SECONDS + WAIT))
    until docker_answers; do
        (( SECONDS < deadline )) || die "docker.service started but \`docker info\` does not answer after ${WAIT}s; see: journalctl -u docker"
        sleep 1
    done
    log "Docker engine answers"
    exit 0
fi

# 3. Start dockerd, unless one is already starting; 4. wait for it to answer.
start_dockerd() {
    mkdir -p "$(dirname "$LOGFILE")"
    # A pidfile left by a dead daemon blocks a new one (dockerd counts a zombie as alive).
    local old
    old=$(cat /var/run/docker.pid 2>/dev/null || true)
    if [[ -f /var/run/docker.pid ]] && ! { [[ "$old" =~ ^[0-9]+$ ]] && live_pid "$old"; }; then
        log "removing stale /var/run/docker.pid (pid ${old:-?} is gone)"
        rm -f /var/run/docker.pid
    fi
    # Same for the containerd that dockerd manages: a pidfile naming a zombie makes
    # the new dockerd wait for it and fail ("timeout waiting for containerd to start").
    old=$(cat /var/run/docker/containerd/containerd.pid 2>/dev/null || true)
    if [[ -n "$old" ]] && ! { [[ "$old" =~ ^[0-9]+$ ]] && live_pid "$old"; }; then
        rm -f /var/run/docker/containerd/containerd.pid
    fi
    log "starting dockerd (log: $LOGFILE)"
    echo "==== $(date -Is) docker-engine.sh starting dockerd" >>"$LOGFILE"
    # Own session (setsid): the daemon outlives this shell and its process group.
    # dockerd starts its own containerd when /run/containerd/containerd.sock is absent.
    # shellcheck disable=SC2086  # SPACEDOCK_DOCKERD_ARGS is word-split on purpose
    setsid nohup dockerd \
        --bip "$BIP" \
        --default-address-pool "$POOL" \
        ${MTU:+--mtu "$MTU"} \
        ${SPACEDOCK_DOCKERD_ARGS:-} \
        >>"$LOGFILE" 2>&1 </dev/null 9>&- &   # 9>&-: the daemon must not hold our lock
    disown || true
}

started=0
if pid=$(dockerd_pid); then
    log "dockerd is already running (pid $pid); waiting for it to answer"
else
    start_dockerd; started=1
fi

deadline=$((SECONDS + WAIT))
until docker_answers; do
    if (( SECONDS >= deadline )); then
        log "dockerd did not answer within ${WAIT}s; last lines of $LOGFILE:"
        tail -n 25 "$LOGFILE" >&2 || true
        exit 1
    fi
    if ! dockerd_pid >/dev/null; then
        if (( started )); then
            log "dockerd exited; last lines of $LOGFILE:"
            tail -n 25 "$LOGFILE" >&2 || true
            exit 1
        fi
        # The daemon we found was on its way out (or a dead process): start ours.
        start_dockerd; started=1
    fi
    sleep 1
done
log "Docker engine answers ($("$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
