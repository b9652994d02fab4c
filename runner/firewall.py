"""Keeps spaces out of the host and off every address that is not the public internet.

Into the host (INPUT): a packet from the spaces bridge to any host address is dropped, but for
one door: TCP to the port Caddy serves the public on (SPACEDOCK_LISTEN's). Through it an app's
server reaches the platform as anyone on the internet does (the OpenID provider of "Sign in
with", the Hub API), through Caddy and the platform's own checks. Services that listen on
127.0.0.1 (Postgres, Redis, Caddy admin, gunicorn) are out of a container's reach anyway; the
drop also closes what listens on 0.0.0.0 (the bridge gateway is one of the host's addresses).
Replies to connections the host opened (Caddy to a published port) pass.

Out of the host (FORWARD): link-local (the cloud metadata address 169.254.169.254), private,
shared (CGNAT), loopback, benchmarking (Docker's own bridges), multicast and reserved ranges are
dropped, but for SPACEDOCK_EGRESS_ALLOW; the rest (the public internet) goes through Docker's
NAT. The same ranges are dropped for builds (deploy/build-engine.sh).

Each chain is written whole with `iptables-restore --noflush`: no moment passes with half a chain.

A runner that cannot install the rules (not root, no CAP_NET_ADMIN, no iptables) says so in
/healthz (check() writes a report the web reads) and starts no space until it can: a space
started then would reach the host and the metadata address. SPACEDOCK_RUNNER_FIREWALL=false is
the operator's way to say another firewall does this job.
"""

import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

from django.conf import settings

from runner import docker_runtime
from spacedock.health.checks import firewall_report, firewall_report_path

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


def public_port() -> str:
    """The port Caddy serves the public on: SPACEDOCK_LISTEN's (":8080", "127.0.0.1:8080,...")."""
    return settings.LISTEN.split(",")[0].strip().rpartition(":")[2]


def gateway() -> str:
    """The host's address on the spaces' bridge: where a container on this machine finds the door
    (host.docker.internal in its /etc/hosts)."""
    return docker_runtime.gateway(docker_runtime.ensure_network())


def rules(bridge: str, dropped: tuple[str, ...] = DROPPED, v6: bool = False) -> dict[str, list[list[str]]]:
    """The two chains' rules, in order: replies first, then the door or the allow-list, then the drops."""
    into, out = chains(bridge)
    reply = ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"]
    door = ["-i", bridge, "-p", "tcp", "--dport", public_port(), "-j", "ACCEPT"]
    forward = [["-i", bridge, *reply]]
    for network, port in allowed():
        if (":" in network) != v6:
            continue
        for proto in ("tcp", "udp") if port else ("",):
            match = ["-p", proto, "--dport", port] if port else []
            forward.append(["-i", bridge, "-d", network, *match, "-j", "ACCEPT"])
    forward += [["-i", bridge, "-d", network, "-j", "DROP"] for network in dropped]
    return {into: [["-i", bridge, *reply], door, ["-i", bridge, "-j", "DROP"]], out: forward}


# What a space's owner reads while the runner refuses to start it (the operator reads /healthz).
REFUSED = (
    "Spacedock will not start this space: the host's firewall for spaces is not installed, so the "
    "app could reach the platform's own services. The operator has been told (/healthz); the space "
    "starts on its own once the firewall is in place."
)
FIX = (
    "the runner needs root or CAP_NET_ADMIN and iptables (compose: cap_add NET_ADMIN on the runner; "
    "systemd: AmbientCapabilities=CAP_NET_ADMIN in spacedock-runner.service; docs/operations.md), "
    "or set SPACEDOCK_RUNNER_FIREWALL=false where a firewall of your own keeps spaces off the host "
    "and private addresses. Until then the runner starts no space."
)


def ensure() -> bool:
    """Installs the rules (idempotent, cheap when they are in place); False where they are not in
    place (turned off, or iptables cannot be used: not root)."""
    return settings.RUNNER_FIREWALL and not install()


def check() -> str:
    """Installs the rules and writes the report /healthz reads; the reason to start no space, or
    "" when spaces may start (the rules are in place, or turned off on purpose)."""
    if not settings.RUNNER_FIREWALL:
        _report("off", "turned off on purpose (SPACEDOCK_RUNNER_FIREWALL=false)")
        return ""
    problem = install()
    if problem:
        _report("failing", f"the firewall for spaces is not installed ({problem}): {FIX}")
        return REFUSED
    _report("ok", "ok")
    return ""


def _report(status: str, message: str) -> None:
    path = firewall_report_path()
    if firewall_report() == {"status": status, "message": message}:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps({"status": status, "message": message}))
    temporary.replace(path)  # whole or not at all: the web may read it at any moment


def install() -> str:
    """Installs the rules; "" once they are in place, else what stopped it."""
    iptables = shutil.which("iptables")
    if iptables is None:
        log.error("iptables is missing: spaces could reach the host and private addresses")
        return "iptables is not installed"
    bridge = docker_runtime.bridge_name()
    if problem := _install(iptables, bridge, rules(bridge)):
        return problem
    ip6tables = shutil.which("ip6tables")
    if ip6tables and _install(ip6tables, bridge, rules(bridge, DROPPED_V6, v6=True)):
        log.warning("ip6tables: the IPv6 rules for %s could not be installed", bridge)
    return ""


def _install(iptables: str, bridge: str, wanted: dict[str, list[list[str]]]) -> str:
    into, out = chains(bridge)
    hooks = {into: "INPUT", out: "FORWARD"}
    if all(_in_place(iptables, chain, rules_) for chain, rules_ in wanted.items()) and all(
        _run(iptables, "-w", "-C", hook, "-j", chain).returncode == 0 for chain, hook in hooks.items()
    ):
        return ""
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
        return f"{Path(iptables).name}-restore: {result.stderr.strip()[:300]}"
    for chain, hook in hooks.items():
        if _run(iptables, "-w", "-C", hook, "-j", chain).returncode != 0:
            result = _run(iptables, "-w", "-I", hook, "1", "-j", chain)
            if result.returncode != 0:
                log.error("iptables -I %s -j %s: %s", hook, chain, result.stderr.strip())
                return f"{Path(iptables).name} -I {hook}: {result.stderr.strip()[:300]}"
    log.info("firewall: %s reaches no private address, and the host on port %s only", bridge, public_port())
    return ""


def _in_place(iptables: str, chain: str, wanted: list[list[str]]) -> bool:
    listed = _run(iptables, "-w", "-S", chain)
    if listed.returncode != 0 or listed.stdout.count("\n-A ") != len(wanted):
        return False
    return all(_run(iptables, "-w", "-C", chain, *rule).returncode == 0 for rule in wanted)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True)


def refuse(space, live: bool) -> None:
    """Says on the space's page and in its run log why it does not start: once, not every pass.
    No failed target is recorded, so the space starts on the first pass after the rules are in."""
    from spacedock.spaces import stages

    if space.stage_message.endswith(REFUSED):
        return
    space.log_run(f"===== {REFUSED} =====")
    if live:
        stages.replacement_failed(space, REFUSED)
    else:
        stages.app_failed(space, REFUSED)
