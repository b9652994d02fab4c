#!/usr/bin/env bash
# Build Spacedock's offline base image when it is missing.
#
#   deploy/base-image.sh               # builds $SPACEDOCK_BASE_IMAGE unless it exists
#   deploy/base-image.sh --force       # rebuild even if it exists
#
# No registry is needed: the root file system comes from Debian's packages
# (debootstrap, through the same mirror or proxy that the host's apt uses) and
# goes into Docker with `docker import`. The image has python3 with venv and pip
# (Debian's), ca-certificates, and apt sources for the suite, its updates and
# its security updates.
#
# Environment:
#   SPACEDOCK_BASE_IMAGE     image name (default spacedock/base:bookworm)
#   SPACEDOCK_BASE_SUITE     Debian suite (default bookworm)
#   SPACEDOCK_BASE_MIRROR    Debian mirror (default: the one in the host's apt sources)
#   SPACEDOCK_BASE_PACKAGES  extra packages, comma-separated (added to --include)
#   SPACEDOCK_BASE_UPGRADE   1 (default) = apply bookworm-updates/-security in the image
#   SPACEDOCK_BASE_HOST_CA   1 = also trust the host's local CAs (/usr/local/share/ca-certificates)
#                            inside the image, for every later build and container (default 0:
#                            builds get the host's CA bundle as a BuildKit secret instead)
#   SPACEDOCK_BUILD_TMP      where the root fs is assembled (default /var/tmp)
set -euo pipefail

log() { printf 'base-image: %s\n' "$*" >&2; }
die() { printf 'base-image: ERROR: %s\n' "$*" >&2; exit 1; }

IMAGE=${SPACEDOCK_BASE_IMAGE:-spacedock/base:bookworm}
SUITE=${SPACEDOCK_BASE_SUITE:-bookworm}
UPGRADE=${SPACEDOCK_BASE_UPGRADE:-1}
FORCE=0
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        -h|--help) sed -n '2,/^set -/{/^set -/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) die "unknown argument: $arg (try --help)" ;;
    esac
done

if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=$(command -v docker || true); fi
[[ -n "$DOCKER" ]] || die "no docker client; run deploy/docker-engine.sh first"

if ! timeout 15 "$DOCKER" info >/dev/null 2>&1; then
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    if [[ -x "$here/docker-engine.sh" ]]; then
        "$here/docker-engine.sh" || die "no Docker engine answers (deploy/docker-engine.sh failed)"
    else
        die "no Docker engine answers; start one first (deploy/docker-engine.sh)"
    fi
fi

# Fast path.
if [[ $FORCE -eq 0 ]] && "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
    exit 0
fi

[[ $(id -u) -eq 0 ]] || die "building $IMAGE needs root (debootstrap, chroot). Run as root, or provide an image named $IMAGE another way (docker pull/tag/load) and set SPACEDOCK_BASE_IMAGE."

exec 9>/run/spacedock-base-image.lock
flock -w 900 9 || die "another base-image.sh holds /run/spacedock-base-image.lock"
if [[ $FORCE -eq 0 ]] && "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
    exit 0   # built by the run we waited for
fi

start=$SECONDS

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "$@"; then
        log "apt-get install failed; running apt-get update and trying again"
        apt-get update
        apt-get install -y --no-install-recommends "$@"
    fi
}
if ! command -v debootstrap >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "debootstrap is missing and this is not a Debian-family host; install debootstrap"
    log "installing debootstrap"
    apt_install debootstrap debian-archive-keyring || die "could not install debootstrap"
fi

# The Debian mirror the host's apt already uses (so it works through the host's
# mirror or proxy). One-line sources first, then deb822 .sources files; the first
# "deb" entry whose suite is $SUITE wins.
host_mirror() {
    local f SUITE=$1
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r "$f" ]] || continue
        awk -v suite="$SUITE" '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i+1) == suite) { print $i; exit }
            }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -r "$f" ]] || continue
        # deb822: paragraphs separated by blank lines.
        awk -v suite="$SUITE" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && uris != "" && enabled != "no") {
                    split(uris, u, " "); print u[1]; found = 1; exit
                }
                types = ""; suites = ""; uris = ""; enabled = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            { key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
              if (key == "types") types = $0
              else if (key == "suites") suites = $0
              else if (key == "uris") uris = $0
              else if (key == "enabled") enabled = tolower($0) }
            END { if (!found) flush() }' "$f"
    done
}
MIRROR=${SPACEDOCK_BASE_MIRROR:-$(host_mirror "$SUITE" | head -n1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SPACEDOCK_BASE_SECURITY_MIRROR:-$(host_mirror "$SUITE-security" | head -n1)}
if [[ -z "$SECURITY_MIRROR" ]]; then
    # On Debian's own hosts the security archive sits beside the main one.
    case "$MIRROR" in
        */debian) SECURITY_MIRROR=${MIRROR%/debian}/debian-security ;;
        *) SECURITY_MIRROR=http://deb.debian.org/debian-security ;;
    esac
fi

# apt may reach the network through a configured proxy; debootstrap's wget reads http_proxy.
if command -v apt-config >/dev/null 2>&1; then
    eval "$(apt-config shell APT_HTTP_PROXY Acquire::http::Proxy APT_HTTPS_PROXY Acquire::https::Proxy)"
    if [[ -n "${APT_HTTP_PROXY:-}" && -z "${http_proxy:-}" ]]; then export http_proxy=$APT_HTTP_PROXY; fi
    if [[ -n "${APT_HTTPS_PROXY:-}" && -z "${https_proxy:-}" ]]; then export https_proxy=$APT_HTTPS_PROXY; fi
fi

TMPBASE=${SPACEDOCK_BUILD_TMP:-/var/tmp}
mkdir -p "$TMPBASE"
WORK=$(mktemp -d "$TMPBASE/spacedock-base.XXXXXX")
ROOTFS=$WORK/rootfs

cleanup() {
    local rc=$?
    # debootstrap (or our chroot steps) may leave /proc, /sys, /dev mounted inside
    # the root fs: unmount them, deepest first, before removing anything.
    local m
    if [[ -r /proc/mounts ]]; then
        awk -v w="$WORK" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
            umount -l "$m" 2>/dev/null || true
        done
    fi
    rm -rf --one-file-system "$WORK"
    if [[ $rc -ne 0 ]]; then log "failed after $((SECONDS - start))s (exit $rc); temp dir removed"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

INCLUDE=python3,python3-venv,python3-pip,ca-certificates${SPACEDOCK_BASE_PACKAGES:+,$SPACEDOCK_BASE_PACKAGES}
log "debootstrap $SUITE from $MIRROR into $ROOTFS (include: $INCLUDE)"
if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
    tail -n 30 "$WORK/debootstrap.log" >&2
    [[ -r "$ROOTFS/debootstrap/debootstrap.log" ]] && tail -n 30 "$ROOTFS/debootstrap/debootstrap.log" >&2
    die "debootstrap failed (mirror $MIRROR; set SPACEDOCK_BASE_MIRROR to another)"
fi
log "debootstrap done in $((SECONDS - start))s"

# apt sources inside the image: the suite, its updates and its security archive.
rm -f "$ROOTFS/etc/apt/sources.list"
cat >"$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

# Keep images small, the way Debian's official container images do.
cat >"$ROOTFS/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
cat >"$ROOTFS/etc/apt/apt.conf.d/docker-no-recommends" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
mkdir -p "$ROOTFS/etc/dpkg/dpkg.cfg.d"
cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF

if [[ "${SPACEDOCK_BASE_HOST_CA:-0}" == 1 ]]; then
    shopt -s nullglob
    cas=(/usr/local/share/ca-certificates/*.crt /usr/local/share/ca-certificates/*/*.crt)
    shopt -u nullglob
    if (( ${#cas[@]} )); then
        log "trusting the host's local CAs in the image: ${cas[*]##*/}"
        for ca in "${cas[@]}"; do
            dest=$ROOTFS/${ca#/}; mkdir -p "$(dirname "$dest")"; cp "$ca" "$dest"
        done
        chroot "$ROOTFS" update-ca-certificates >/dev/null || die "update-ca-certificates failed in the image"
    else
        log "SPACEDOCK_BASE_HOST_CA=1 but /usr/local/share/ca-certificates has no .crt; nothing added"
    fi
fi

if [[ "$UPGRADE" == 1 ]]; then
    log "applying $SUITE-updates and $SUITE-security"
    cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
    # An https mirror behind a TLS-inspecting proxy needs the host's CA in the chroot for this step.
    if [[ "$MIRROR$SECURITY_MIRROR" == *https:* && -r /etc/ssl/certs/ca-certificates.crt ]]; then
        cp /etc/ssl/certs/ca-certificates.crt "$WORK/host-ca.crt"
        mkdir -p "$ROOTFS/run/host-ca" && cp "$WORK/host-ca.crt" "$ROOTFS/run/host-ca/ca.crt"
        aptopts=(-o Acquire::https::CaInfo=/run/host-ca/ca.crt)
    else
        aptopts=()
    fi
    if ! { chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
             ${http_proxy:+http_proxy=$http_proxy} ${https_proxy:+https_proxy=$https_proxy} \
             apt-get "${aptopts[@]}" -q update &&
           chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
             ${http_proxy:+http_proxy=$http_proxy} ${https_proxy:+https_proxy=$https_proxy} \
             apt-get "${aptopts[@]}" -q -y -o Dpkg::Options::=--force-confold dist-upgrade; } >"$WORK/upgrade.log" 2>&1; then
        tail -n 30 "$WORK/upgrade.log" >&2
        die "upgrading the image's packages failed (SPACEDOCK_BASE_UPGRADE=0 skips this step)"
    fi
    rm -rf "$ROOTFS/run/host-ca"
fi

log "trimming"
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/archives/partial/* \
       "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/lib/apt/lists/* \
       "$ROOTFS"/var/cache/debconf/*-old "$ROOTFS"/var/lib/dpkg/*-old \
       "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/lintian/* \
       "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* "$ROOTFS"/debootstrap
mkdir -p "$ROOTFS/var/lib/apt/lists/partial"
find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
find "$ROOTFS/usr/lib" -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
# Docker provides these at run time; the host's must not leak into the image.
: >"$ROOTFS/etc/resolv.conf"
: >"$ROOTFS/etc/hostname"
rm -f "$ROOTFS/etc/machine-id" && : >"$ROOTFS/etc/machine-id"
# mktemp made the folder 0700, and tar records "./": the image's / must be 0755.
chmod 0755 "$ROOTFS"

created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
pyver=$(chroot "$ROOTFS" python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || echo unknown)
log "importing as $IMAGE (python $pyver)"
tar --numeric-owner -C "$ROOTFS" -c . | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PYTHONUNBUFFERED=1' \
    --change 'ENV PIP_DISABLE_PIP_VERSION_CHECK=1' \
    --change "LABEL org.opencontainers.image.title=spacedock-base org.opencontainers.image.created=$created io.spacedock.debian-suite=$SUITE io.spacedock.python=$pyver" \
    --change 'CMD ["/bin/bash"]' \
    --message "spacedock base: debootstrap --variant=minbase $SUITE" \
    - "$IMAGE" >/dev/null

# Smoke test: a venv with pip must work, or the image is useless to the builder.
if ! "$DOCKER" run --rm --network none "$IMAGE" sh -c \
        'python3 -m venv /tmp/v && /tmp/v/bin/python -m pip --version >/dev/null && /tmp/v/bin/python -c "import ssl, sqlite3, venv"' >&2; then
    "$DOCKER" image rm "$IMAGE" >/dev/null 2>&1 || true
    die "the imported image failed its smoke test (python3 -m venv / pip); image removed"
fi

size=$("$DOCKER" image inspect --format '{{.Size}}' "$IMAGE")
log "built $IMAGE in $((SECONDS - start))s ($((size / 1024 / 1024)) MiB, python $pyver)"
