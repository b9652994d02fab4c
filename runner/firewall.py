"""Keeps spaces out of the host and off every address that is not the public internet.

Into the host (INPUT): a packet from the spaces bridge to any host address is dropped. Services
that listen on 127.0.0.1 (Postgres, Redis, Caddy admin, gunicorn) are out of a container's reach
anyway; this also closes what listens on 0.0.0.0 (the bridge gateway is one of the host's
addresses). Replies to connections the host opened (Caddy to a published port) pass.

Out of the host (FORWARD): link-local (the cloud metadata address 169.254.169.254), private,
shared (CGNAT), loopback, benchmarking (Docker's own bridges), multicast and reserved ranges are
dropped, but for SPACEDOCK_EGRESS_ALLOW; the rest (the public internet) goes through Docker's
NAT. The same ranges are dropped for builds (deploy/build-engine.sh).

Each chain is written whole with `iptables-restore --noflush`: no moment passes with half a chain.
"""

import logging
import shutil
import subprocess

from django.conf import settings

from runner import docker_runtime

log = logging.getLogger(__name__)

DROPPED = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
DROPPED_V6 = ("::1/128", "fc00::/7", "fe80::/10", "ff00::/8")


def chains(bridge: str) -> tuple[str, str]:
    # iptables caps chain names at 28 characters; the bridge's name is at most 15.
    return f"SD-IN-{bridge}", f"SD-OUT-{bridge}"


def allowed() -> list[tuple[str, str]]:
    """SPACEDOCK_EGRESS_ALLOW as (network, port) pairs; port "" for every port."""
    pairs = []
    for entry in settings.EGRESS_ALLOW:
        network, _, port = entry.partition(":") if entry.count(":") == 1 else (entry, "", "")
        pairs.append((network, port))
    return pairs


def rules(bridge: str, dropped: tuple[str, ...] = DROPPED, v6: bool = False) -> dict[str, list[list[str]]]:
    """The two chains' rules, in order: replies first, then the allow-list, then the drops."""
    into, out = chains(bridge)
    reply = ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"]
    forward = [["-i", bridge, *reply]]
    for network, port in allowed():
        if (":" in network) != v6:
            continue
        for proto in ("tcp", "udp") if port else ("",):
            match = ["-p", proto, "--dport", port] if port else []
            forward.append(["-i", bridge, "-d", network, *match, "-j", "ACCEPT"])
    forward += [["-i", bridge, "-d", network, "-j", "DROP"] for network in dropped]
    return {into: [["-i", bridge, *reply], ["-i", bridge, "-j", "DROP"]], out: forward}


def ensure() -> bool:
    """Installs the rules (idempotent, cheap when they are in place); False where iptables cannot
    be used (not root)."""
    if not settings.RUNNER_FIREWALL:
        return False
    iptables = shutil.which("iptables")
    if iptables is None:
        log.error("iptables is missing: spaces could reach the host and private addresses")
        return False
    bridge = docker_runtime.bridge_name()
    if not _install(iptables, bridge, rules(bridge)):
        return False
    ip6tables = shutil.which("ip6tables")
    if ip6tables and not _install(ip6tables, bridge, rules(bridge, DROPPED_V6, v6=True)):
        log.warning("ip6tables: the IPv6 rules for %s could not be installed", bridge)
    return True


def _install(iptables: str, bridge: str, wanted: dict[str, list[list[str]]]) -> bool:
    into, out = chains(bridge)
    hooks = {into: "INPUT", out: "FORWARD"}
    if all(_in_place(iptables, chain, rules_) for chain, rules_ in wanted.items()) and all(
        _run(iptables, "-w", "-C", hook, "-j", chain).returncode == 0 for chain, hook in hooks.items()
    ):
        return True
    restore = ["*filter"] + [f":{chain} - [0:0]" for chain in wanted]
    restore += [" ".join(["-A", chain, *rule]) for chain, rules_ in wanted.items() for rule in rules_]
    restore.append("COMMIT")
    result = subprocess.run(
        [f"{iptables}-restore", "-w", "--noflush"],
        input="\n".join(restore) + "\n",
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        log.error("%s-restore: %s", iptables, result.stderr.strip())
        return False
    for chain, hook in hooks.items():
        if _run(iptables, "-w", "-C", hook, "-j", chain).returncode != 0:
            result = _run(iptables, "-w", "-I", hook, "1", "-j", chain)
            if result.returncode != 0:
                log.error("iptables -I %s -j %s: %s", hook, chain, result.stderr.strip())
                return False
    log.info("firewall: %s reaches neither the host nor private addresses", bridge)
    return True


def _in_place(iptables: str, chain: str, wanted: list[list[str]]) -> bool:
    listed = _run(iptables, "-w", "-S", chain)
    if listed.returncode != 0 or listed.stdout.count("\n-A ") != len(wanted):
        return False
    return all(_run(iptables, "-w", "-C", chain, *rule).returncode == 0 for rule in wanted)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True)
