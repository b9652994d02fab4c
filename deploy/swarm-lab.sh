#!/usr/bin/env bash
# A multi-node Docker Swarm on one machine, for the cluster tests and the cluster bench; root.
#
#   deploy/swarm-lab.sh up [N]   # N engines (default 3), each in a network namespace of its own,
#                                # joined into one swarm whose manager is the first of them
#   deploy/swarm-lab.sh down     # stops them and removes every trace (namespaces, links, data)
#   deploy/swarm-lab.sh kill I   # kill -9 node I's dockerd and containerd (a node that dies)
#
# With NET the lab's network base (210 unless told), node I lives in network namespace $LAB-nI,
# reached from the host over a bridge ($LAB-br, 198.18.NET.1/24) at 198.18.NET.(10+I). Each engine
# has its own data root, exec root, socket (unix://$RUN/I/docker.sock), pidfile, bridge
# (198.18.(NET+I).1/24) and address pool (198.18.(NET+14+2I).0/23); the swarm's overlay pool is
# 198.18.(NET+30).0/21. With 210 (the tests') that is 198.18.210.0-247.255, with 18 (the bench's)
# 198.18.18.0-55.255: none of it the main engine's (198.18.0.0/24, 198.19.0.0/16) or the build
# engine's (198.18.64.0/24, 198.18.128.0/18, 198.18.250.0/30), nor the other lab's, so a bench and
# a test run each have a lab of their own at the same time (with different names).
# The nodes pull only from Spacedock's registry: inside each namespace 127.0.0.1:<registry port>
# forwards to the host's registry (localhost needs no TLS), so image names stay as the builder
# writes them (<registry>/<repository>@sha256:...).
#
# Environment: SPACEDOCK_SWARM_LAB (name prefix, at most 5 characters) [sdsw],
#              SPACEDOCK_SWARM_LAB_NET (network base: even, NET+30 a multiple of 8) [210],
#              SPACEDOCK_REGISTRY (host:port of the registry) [127.0.0.1:8082].
# Prints, on `up`, one line per node: "node <I> <address> unix://<socket>".
set -euo pipefail

LAB=${SPACEDOCK_SWARM_LAB:-sdsw}
NET=${SPACEDOCK_SWARM_LAB_NET:-210}
REGISTRY=${SPACEDOCK_REGISTRY:-127.0.0.1:8082}
REG_PORT=${REGISTRY##*:}
RUN=/run/$LAB
DATA=/var/lib/$LAB
BR=$LAB-br
HOST_ADDR=198.18.$NET.1
DOCKER=/usr/bin/docker
[[ -x $DOCKER ]] || DOCKER=docker

log() { printf 'swarm-lab: %s\n' "$*" >&2; }
die() { printf 'swarm-lab: ERROR: %s\n' "$*" >&2; exit 1; }
((NET % 2 == 0 && (NET + 30) % 8 == 0 && NET + 37 < 256)) || die "SPACEDOCK_SWARM_LAB_NET=$NET: even, NET+30 a multiple of 8"
[[ $(id -u) -eq 0 ]] || die "run as root: it makes network namespaces and starts engines"
command -v socat >/dev/null || die "socat is missing (apt-get install socat)"

node_addr() { echo "198.18.$NET.$((10 + $1))"; }
sock() { echo "unix://$RUN/$1/docker.sock"; }
d() { local i=$1; shift; "$DOCKER" -H "$(sock "$i")" "$@"; }

start_node() {
    local i=$1 ns=$LAB-n$1 host_if=$LAB$1h node_if=$LAB$1n addr
    addr=$(node_addr "$i")
    mkdir -p "$RUN/$i" "$DATA/$i"
    echo '{}' >"$RUN/$i/daemon.json"  # not the host's /etc/docker/daemon.json
    ip netns add "$ns"
    ip link add "$host_if" type veth peer name "$node_if"
    ip link set "$host_if" master "$BR" up
    ip link set "$node_if" netns "$ns"
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$addr/24" dev "$node_if"
    ip -n "$ns" link set "$node_if" up
    # No default route: a node reaches the other nodes and the host's end of the bridge, nothing
    # else, so an image that is not in Spacedock's registry fails at once instead of leaving the machine.
    # The registry, as the host names it: 127.0.0.1:<port> inside the namespace goes to the host.
    setsid nohup nsenter --net="/run/netns/$ns" socat \
        "TCP-LISTEN:$REG_PORT,bind=127.0.0.1,reuseaddr,fork" "TCP:$HOST_ADDR:$REG_PORT" \
        >/dev/null 2>&1 </dev/null &
    echo $! >"$RUN/$i/socat.pid"
    # `nsenter --net`, not `ip netns exec`: the latter remounts /sys, and dockerd then finds no cgroups.
    # --no-new-privileges: Swarm's container spec cannot ask for it on this engine version.
    setsid nohup nsenter --net="/run/netns/$ns" dockerd \
        --host "$(sock "$i")" --data-root "$DATA/$i/root" --exec-root "$RUN/$i/exec" \
        --pidfile "$RUN/$i/docker.pid" --bip "198.18.$((NET + i)).1/24" \
        --default-address-pool "base=198.18.$((NET + 14 + 2 * i)).0/23,size=24" \
        --cgroup-parent "/$LAB-$i" --no-new-privileges --userland-proxy=false \
        --config-file "$RUN/$i/daemon.json" --log-level warn \
        >"$RUN/$i/dockerd.log" 2>&1 </dev/null &
}

wait_node() {
    local i=$1 deadline=$((SECONDS + 60))
    until d "$i" info >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { tail -n 20 "$RUN/$i/dockerd.log" >&2; die "node $i did not answer"; }
        sleep 0.5
    done
}

up() {
    local n=${1:-3} i
    [[ ! -d $RUN ]] || down
    mkdir -p "$RUN"
    ip link add "$BR" type bridge
    ip addr add "$HOST_ADDR/24" dev "$BR"
    ip link set "$BR" up
    # Docker's FORWARD policy drops bridged traffic (br_netfilter): let the nodes talk to each other.
    iptables -w -I FORWARD 1 -i "$BR" -o "$BR" -j ACCEPT
    setsid nohup socat "TCP-LISTEN:$REG_PORT,bind=$HOST_ADDR,reuseaddr,fork" "TCP:$REGISTRY" \
        >/dev/null 2>&1 </dev/null &
    echo $! >"$RUN/socat.pid"
    for ((i = 1; i <= n; i++)); do start_node "$i"; done
    for ((i = 1; i <= n; i++)); do wait_node "$i"; done
    d 1 swarm init --advertise-addr "$(node_addr 1)" --listen-addr "$(node_addr 1):2377" \
        --default-addr-pool "198.18.$((NET + 30)).0/21" --default-addr-pool-mask-length 24 \
        --dispatcher-heartbeat 2s >/dev/null
    local token
    token=$(d 1 swarm join-token -q worker)
    for ((i = 2; i <= n; i++)); do
        d "$i" swarm join --token "$token" --advertise-addr "$(node_addr "$i")" \
            --listen-addr "$(node_addr "$i"):2377" "$(node_addr 1):2377" >/dev/null
    done
    for ((i = 1; i <= n; i++)); do
        d 1 node update --label-add "spacedock.lab=$i" "$(d "$i" info --format '{{.Swarm.NodeID}}')" >/dev/null
        echo "node $i $(node_addr "$i") $(sock "$i")"
    done
}

kill_node() {
    local i=$1 pid
    # Everything the node runs dies at once, as when its machine stops: dockerd, containerd, the
    # shims (all in its namespace) and the containers (in its cgroup parent).
    for pid in $(ip netns pids "$LAB-n$i" 2>/dev/null || true); do kill -9 "$pid" 2>/dev/null || true; done
    kill_cgroup "$i"
    sleep 0.3  # SIGKILL is delivered at once; the kernel needs a moment to drop their mounts
}

down() {
    local dir i pid
    for dir in "$RUN"/[0-9]*; do
        [[ -d $dir ]] || continue
        i=${dir##*/}
        # A lab leaves nothing worth a graceful stop: everything of the node dies at once.
        kill_node "$i"
        pid=$(cat "$dir/socat.pid" 2>/dev/null || true)
        [[ -z $pid ]] || kill "$pid" 2>/dev/null || true
        ip netns del "$LAB-n$i" 2>/dev/null || true
        ip link del "$LAB${i}h" 2>/dev/null || true
        umount -R "$dir/exec" 2>/dev/null || true
        grep -o " $DATA/$i/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
        grep -o " $dir/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    done
    pid=$(cat "$RUN/socat.pid" 2>/dev/null || true)
    [[ -z $pid ]] || kill "$pid" 2>/dev/null || true
    while iptables -w -D FORWARD -i "$BR" -o "$BR" -j ACCEPT 2>/dev/null; do :; done
    ip link del "$BR" 2>/dev/null || true
    rm -rf "$RUN"
    # Three engines' image layers are many small files: they go in the background, at idle I/O.
    if [[ -d $DATA ]]; then
        mv "$DATA" "$DATA.gone.$$"
        setsid nohup ionice -c3 nice rm -rf "$DATA.gone.$$" >/dev/null 2>&1 </dev/null &
    fi
}

kill_cgroup() {
    local c pid
    for c in /sys/fs/cgroup/*/"$LAB-$1"; do
        [[ -d $c ]] || continue
        for pid in $(cat "$c"/*/cgroup.procs "$c"/cgroup.procs 2>/dev/null || true); do
            kill -9 "$pid" 2>/dev/null || true
        done
        sleep 0.2
        rmdir "$c"/*/ "$c" 2>/dev/null || true
    done
}

case "${1:-}" in
    up) up "${2:-3}" ;;
    down) down ;;
    kill) kill_node "${2:?which node}" ;;
    *) die "usage: $0 up [N] | down | kill I" ;;
esac
