#!/usr/bin/env bash
# Ensure the build engine runs: a second Docker engine, only for tenants' builds.
#
#   deploy/build-engine.sh            # exit 0 once the build engine answers (idempotent)
#
# Tenants' Dockerfiles are code from strangers. They build here, never on the engine that runs
# the platform and the spaces:
# - its own image store (--data-root): the base image and the shared SDK images only; a
#   `FROM spacedock/platform` or another space's image is simply not there, and the build
#   client has no registry credentials to pull one;
# - its own network namespace: `ADD http://127.0.0.1:...` is fetched on that namespace's own
#   loopback; its traffic leaves through a veth pair to the host, where iptables drops the
#   link-local, private and shared ranges and every address of the host (Caddy's admin API,
#   gunicorn, Postgres, Redis), and NATs the rest to the internet; the engine itself (not a build
#   step) reaches the registry's port on the host's end of the link, to push built images;
# - a cgroup parent with memory, CPU and process limits over every build step;
# - its data root on a file system of a fixed size (a loop-mounted ext4 image).
# Each run re-applies the limits and the firewall, so a changed setting takes effect at once.
#
# Environment (defaults in brackets):
#   SPACEDOCK_BUILD_DOCKER_HOST   the engine's socket [unix:///run/spacedock-build/docker.sock]
#   SPACEDOCK_BUILD_ROOT          its disk image, data root and log [/var/lib/spacedock-build]
#   SPACEDOCK_BUILD_DISK_GB       size of its file system [40]
#   SPACEDOCK_BUILD_MEMORY_MB     memory of all builds together [a third of RAM, at most 8192]
#   SPACEDOCK_BUILD_CPUS          CPUs of all builds together [three quarters of the cores, at least 1]
#   SPACEDOCK_BUILD_PIDS          processes of all builds together [2048]
#   SPACEDOCK_BUILD_EGRESS_ALLOW  addresses builds may reach despite the drops, comma-separated
#                                 CIDR or CIDR:port [unset]; the host's DNS servers (port 53)
#                                 are always allowed
#   SPACEDOCK_BUILD_NETNS         network namespace name [spacedock-build]
#   SPACEDOCK_BUILD_CGROUP        cgroup parent name [spacedock-build]
#   SPACEDOCK_BUILD_LINK          veth link, host .1, namespace .2 [198.18.250.0/30]
#   SPACEDOCK_BUILD_BIP           the engine's bridge [198.18.64.1/24]
#   SPACEDOCK_BUILD_POOL          its address pool [base=198.18.128.0/18,size=24]
#   SPACEDOCK_BASE_IMAGE          copied in from the main engine when missing [spacedock/base:bookworm]
#   SPACEDOCK_DOCKER_MTU          as for deploy/docker-engine.sh
#
# Needs root, iproute2 (ip netns), util-linux (nsenter, losetup), e2fsprogs, iptables, docker.io,
# and cgroup v1 controllers memory, cpu and pids, or cgroup v2 (see docs/security.md).
set -euo pipefail

log() { printf 'build-engine: %s\n' "$*" >&2; }
die() { printf 'build-engine: ERROR: %s\n' "$*" >&2; exit 1; }

HOST=${SPACEDOCK_BUILD_DOCKER_HOST:-unix:///run/spacedock-build/docker.sock}
[[ "$HOST" == unix://* ]] || die "SPACEDOCK_BUILD_DOCKER_HOST=$HOST: this script starts an engine on a unix socket only"
SOCK=${HOST#unix://}
RUNDIR=$(dirname "$SOCK")
ROOT=${SPACEDOCK_BUILD_ROOT:-/var/lib/spacedock-build}
NS=${SPACEDOCK_BUILD_NETNS:-spacedock-build}
CGROUP=${SPACEDOCK_BUILD_CGROUP:-spacedock-build}
LINK=${SPACEDOCK_BUILD_LINK:-198.18.250.0/30}
BIP=${SPACEDOCK_BUILD_BIP:-198.18.64.1/24}
POOL=${SPACEDOCK_BUILD_POOL:-base=198.18.128.0/18,size=24}
DISK_GB=${SPACEDOCK_BUILD_DISK_GB:-40}
PIDS=${SPACEDOCK_BUILD_PIDS:-2048}
BASE_IMAGE=${SPACEDOCK_BASE_IMAGE:-spacedock/base:bookworm}
WAIT=60
LOGFILE=$ROOT/dockerd.log
# Interface names: at most 15 characters.
HOST_IF="sdb-${NS:0:8}-h"
NS_IF="sdb-${NS:0:8}-n"

for n in "$DISK_GB" "$PIDS"; do [[ "$n" =~ ^[0-9]+$ ]] || die "expected a whole number, got '$n'"; done
mem_total_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
MEMORY_MB=${SPACEDOCK_BUILD_MEMORY_MB:-$(( mem_total_mb / 3 < 8192 ? mem_total_mb / 3 : 8192 ))}
[[ "$MEMORY_MB" =~ ^[0-9]+$ ]] || die "SPACEDOCK_BUILD_MEMORY_MB: expected a whole number"
CPUS=${SPACEDOCK_BUILD_CPUS:-$(awk -v n="$(nproc)" 'BEGIN {c = n * 3 / 4; if (c < 1) c = 1; print c}')}
[[ "$CPUS" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "SPACEDOCK_BUILD_CPUS: expected a number of CPUs"

DOCKER=/usr/bin/docker
[[ -x $DOCKER ]] || DOCKER=$(command -v docker || true)
engine_answers() { [[ -n "$DOCKER" ]] && timeout 10 "$DOCKER" -H "$HOST" info >/dev/null 2>&1; }

if [[ $(id -u) -ne 0 ]]; then
    engine_answers && exit 0
    die "the build engine does not answer at $HOST, and starting it needs root (a network namespace,
  cgroups, a loop mount). Run this script as root (make up does), or see docs/security.md."
fi
[[ -r /etc/debian_version ]] || die "not a Debian-family system: start the build engine as docs/security.md says"

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "$@" || { apt-get update && apt-get install -y --no-install-recommends "$@"; }
}
missing=()
command -v ip >/dev/null || missing+=(iproute2)
command -v nsenter >/dev/null || missing+=(util-linux)
command -v losetup >/dev/null || missing+=(mount)
command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
command -v iptables >/dev/null || missing+=(iptables)
command -v dockerd >/dev/null || missing+=(docker.io)
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt_install "${missing[@]}" || die "could not install ${missing[*]}"
fi
[[ -n "$DOCKER" ]] || DOCKER=$(command -v docker)

mkdir -p "$RUNDIR" "$ROOT"
chmod 0711 "$RUNDIR"
exec 9>"$RUNDIR.lock"
flock -w 180 9 || die "another build-engine.sh holds $RUNDIR.lock"

# 1. Limits: one cgroup parent for every build step; dockerd and its containerd sit in a child of
#    it for memory and CPU, but not for processes (a fork bomb must not starve the engine itself).
cg_dir() { # controller -> directory, or nothing where the controller is not mounted (cgroup v1)
    local d=/sys/fs/cgroup/$1
    [[ -d $d && -f $d/cgroup.procs && ! -f /sys/fs/cgroup/cgroup.controllers ]] && echo "$d/$CGROUP"
}
if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    die "this host runs cgroup v2 only; the build engine's limits are written for cgroup v1 here.
  Start dockerd with --cgroup-parent and set memory.max, pids.max and cpu.max on that parent (docs/security.md)."
fi
MEM=$(cg_dir memory); CPU=$(cg_dir cpu); PIDCG=$(cg_dir pids)
[[ -n "$MEM" && -n "$CPU" && -n "$PIDCG" ]] || die "cgroup controllers memory, cpu and pids must be mounted under /sys/fs/cgroup"
mkdir -p "$MEM/daemon" "$CPU/daemon" "$PIDCG"
echo $((MEMORY_MB * 1024 * 1024)) >"$MEM/memory.limit_in_bytes"
[[ -f $MEM/memory.memsw.limit_in_bytes ]] && echo $((MEMORY_MB * 1024 * 1024)) >"$MEM/memory.memsw.limit_in_bytes" 2>/dev/null || true
period=100000
echo "$period" >"$CPU/cpu.cfs_period_us"
awk -v c="$CPUS" -v p="$period" 'BEGIN {print int(c * p)}' >"$CPU/cpu.cfs_quota_us"
echo 512 >"$CPU/cpu.shares"   # half the weight of the host's own processes when cores are busy
echo "$PIDS" >"$PIDCG/pids.max"

# 2. Network: a namespace, a veth pair to the host, NAT out, and the drops.
[[ -e /run/netns/$NS ]] || ip netns add "$NS"
if ! ip link show "$HOST_IF" >/dev/null 2>&1; then
    ip link add "$HOST_IF" type veth peer name "$NS_IF" netns "$NS"
fi
prefix=${LINK%/*}; prefix=${prefix%.*}; last=${LINK%/*}; last=${last##*.}
HOST_ADDR="$prefix.$((last + 1))"; NS_ADDR="$prefix.$((last + 2))"; BITS=${LINK#*/}
ip addr replace "$HOST_ADDR/$BITS" dev "$HOST_IF"
ip link set "$HOST_IF" up
nsenter --net="/run/netns/$NS" sh -ec "
    ip link set lo up
    ip addr replace $NS_ADDR/$BITS dev $NS_IF
    ip link set $NS_IF up
    ip route replace default via $HOST_ADDR
"
sysctl -qw net.ipv4.ip_forward=1
# The one way from the namespace to the host: deploy/registry.sh forwards its port on the host's
# end of the link to its 127.0.0.1 listener (DNAT to loopback needs route_localnet on this link;
# INPUT drops everything else from it). Build steps' own traffic to the host's end is dropped
# inside the namespace (raw PREROUTING: it comes in from the engine's bridge); the engine's own
# (a push, or an ADD, which gets the registry's 401) leaves through OUTPUT.
sysctl -qw "net.ipv4.conf.$HOST_IF.route_localnet=1"
nsenter --net="/run/netns/$NS" sh -ec "
    iptables -w -t raw -C PREROUTING -d $HOST_ADDR -j DROP 2>/dev/null \
        || iptables -w -t raw -A PREROUTING -d $HOST_ADDR -j DROP
"

MTU=${SPACEDOCK_DOCKER_MTU:-}
uplink=$(awk '$2 == "00000000" {print $1; exit}' /proc/net/route)
if [[ -z "$MTU" && -n "$uplink" && -r /sys/class/net/$uplink/mtu ]]; then
    m=$(cat "/sys/class/net/$uplink/mtu"); (( m < 1500 )) && MTU=$m
fi
[[ -n "$MTU" ]] && { ip link set "$HOST_IF" mtu "$MTU"; ip -n "$NS" link set "$NS_IF" mtu "$MTU"; }

# What a build may not reach: link-local (cloud metadata), private, shared (CGNAT), loopback,
# benchmarking (both engines' bridges and the spaces), multicast and reserved ranges. The host's
# own addresses arrive on INPUT, where everything from the namespace is dropped.
DROPPED="0.0.0.0/8 10.0.0.0/8 100.64.0.0/10 127.0.0.0/8 169.254.0.0/16 172.16.0.0/12 192.0.0.0/24
192.168.0.0/16 198.18.0.0/15 224.0.0.0/4 240.0.0.0/4"
ipt() { iptables -w "$@"; }
# Both chains written whole in one iptables-restore: no moment passes with half a chain.
{
    echo "*filter"
    echo ":SPACEDOCK-BUILD-FWD - [0:0]"
    echo ":SPACEDOCK-BUILD-IN - [0:0]"
    echo "-A SPACEDOCK-BUILD-FWD -o $HOST_IF -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
    echo "-A SPACEDOCK-BUILD-FWD -o $HOST_IF -j DROP"
    # The host's DNS servers, port 53 only: builds resolve names as the host does.
    for ns_addr in $(awk '/^nameserver/ {print $2}' /etc/resolv.conf | grep -v ':' || true); do
        for proto in udp tcp; do
            echo "-A SPACEDOCK-BUILD-FWD -i $HOST_IF -d $ns_addr -p $proto --dport 53 -j ACCEPT"
        done
    done
    IFS=',' read -r -a allowed <<<"${SPACEDOCK_BUILD_EGRESS_ALLOW:-}"
    for entry in "${allowed[@]}"; do
        entry=${entry// /}; [[ -n "$entry" ]] || continue
        if [[ "$entry" == *:* ]]; then
            for proto in tcp udp; do
                echo "-A SPACEDOCK-BUILD-FWD -i $HOST_IF -d ${entry%:*} -p $proto --dport ${entry##*:} -j ACCEPT"
            done
        else
            echo "-A SPACEDOCK-BUILD-FWD -i $HOST_IF -d $entry -j ACCEPT"
        fi
    done
    for range in $DROPPED; do
        echo "-A SPACEDOCK-BUILD-FWD -i $HOST_IF -d $range -j DROP"
    done
    echo "-A SPACEDOCK-BUILD-FWD -i $HOST_IF -j ACCEPT"
    echo "-A SPACEDOCK-BUILD-IN -i $HOST_IF -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
    echo "-A SPACEDOCK-BUILD-IN -i $HOST_IF -j DROP"
    echo "COMMIT"
} | iptables-restore -w --noflush || die "iptables-restore refused the build engine's rules"
ipt -C FORWARD -j SPACEDOCK-BUILD-FWD 2>/dev/null || ipt -I FORWARD 1 -j SPACEDOCK-BUILD-FWD
ipt -C INPUT -j SPACEDOCK-BUILD-IN 2>/dev/null || ipt -I INPUT 1 -j SPACEDOCK-BUILD-IN
nat=(POSTROUTING -s "$NS_ADDR/32" ! -o "$HOST_IF" -j MASQUERADE)
ipt -t nat -C "${nat[@]}" 2>/dev/null || ipt -t nat -A "${nat[@]}"

# 3. Disk: the data root on a file system of its own size, so a build cannot fill the host's.
DATA_ROOT=$ROOT/root
mkdir -p "$DATA_ROOT"
if ! mountpoint -q "$DATA_ROOT"; then
    image=$ROOT/disk.ext4
    if [[ ! -f $image ]]; then
        log "making a ${DISK_GB} GB file system for builds at $image (sparse: it grows as used)"
        truncate -s "${DISK_GB}G" "$image"
        mkfs.ext4 -q -F -m 0 -E nodiscard "$image"
    fi
    mount -o loop "$image" "$DATA_ROOT" || die "could not loop-mount $image on $DATA_ROOT (is the loop module there?)"
fi

# 4. The engine.
if ! engine_answers; then
    old=$(cat "$RUNDIR/docker.pid" 2>/dev/null || true)
    if [[ -n "$old" && -d /proc/$old ]] && grep -q dockerd "/proc/$old/comm" 2>/dev/null; then
        log "dockerd $old is starting; waiting for it"
    else
        rm -f "$RUNDIR/docker.pid" "$SOCK" "$RUNDIR/exec/containerd/containerd.pid"
        keep=$(( DISK_GB / 2 > 1 ? DISK_GB / 2 : 1 ))
        printf '{"builder": {"gc": {"enabled": true, "defaultKeepStorage": "%sGB"}}}\n' "$keep" >"$RUNDIR/daemon.json"
        log "starting dockerd in network namespace $NS (log: $LOGFILE)"
        echo "==== $(date -Is) build-engine.sh starting dockerd" >>"$LOGFILE"
        # `nsenter --net`, not `ip netns exec`: the latter remounts /sys, and dockerd then finds no cgroups.
        # shellcheck disable=SC2016
        setsid nohup sh -c '
            echo $$ >"$1/cgroup.procs"; echo $$ >"$2/cgroup.procs"; shift 2
            exec "$@"' sh "$MEM/daemon" "$CPU/daemon" \
            nsenter --net="/run/netns/$NS" dockerd \
            --host "$HOST" --data-root "$DATA_ROOT" --exec-root "$RUNDIR/exec" \
            --pidfile "$RUNDIR/docker.pid" --config-file "$RUNDIR/daemon.json" \
            --bip "$BIP" --default-address-pool "$POOL" ${MTU:+--mtu "$MTU"} \
            --cgroup-parent "/$CGROUP" --userland-proxy=false --insecure-registry "$HOST_ADDR/32" \
            >>"$LOGFILE" 2>&1 </dev/null 9>&- &
        disown || true
    fi
    deadline=$((SECONDS + WAIT))
    until engine_answers; do
        if (( SECONDS >= deadline )); then
            log "the build engine did not answer within ${WAIT}s; last lines of $LOGFILE:"
            tail -n 25 "$LOGFILE" >&2 || true
            exit 1
        fi
        sleep 1
    done
fi

# 5. The base image that every build starts from: copied from the main engine, or built.
if ! "$DOCKER" -H "$HOST" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    if "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        log "copying $BASE_IMAGE from the main engine"
        "$DOCKER" save "$BASE_IMAGE" | "$DOCKER" -H "$HOST" load -q >/dev/null
    else
        DOCKER_HOST=$HOST bash "$(dirname "${BASH_SOURCE[0]}")/base-image.sh"
    fi
fi
log "build engine answers at $HOST (memory ${MEMORY_MB} MB, ${CPUS} CPUs, ${PIDS} processes, ${DISK_GB} GB disk)"
