"""Keeps spaces out of the host: a packet from the spaces bridge to any host address is dropped.

Services that listen on 127.0.0.1 (Postgres, Redis, Caddy admin, gunicorn) are out of a
container's reach anyway; this also closes what listens on 0.0.0.0 (the bridge gateway is one of
the host's addresses). Replies to connections the host opened (Caddy to a published port) pass.
Containers still reach the internet through Docker's NAT, which goes through FORWARD, not INPUT.
"""

import logging
import shutil
import subprocess

from django.conf import settings

from runner import docker_runtime

log = logging.getLogger(__name__)


def rules(bridge: str) -> list[list[str]]:
    # In order: replies first, then drop the rest.
    return [
        ["-i", bridge, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
        ["-i", bridge, "-j", "DROP"],
    ]


def ensure() -> bool:
    """Installs the rules once (idempotent); False where iptables cannot be used (not root)."""
    if not settings.RUNNER_FIREWALL:
        return False
    iptables = shutil.which("iptables")
    if iptables is None:
        log.error("iptables is missing: spaces could reach services on the host's 0.0.0.0 ports")
        return False
    bridge = docker_runtime.bridge_name()
    wanted = rules(bridge)
    present = [_run(iptables, "-C", "INPUT", *rule).returncode == 0 for rule in wanted]
    if all(present):
        return True
    for rule in wanted:  # re-add both, so their order is right
        while _run(iptables, "-D", "INPUT", *rule).returncode == 0:
            pass
    for rule in reversed(wanted):
        result = _run(iptables, "-I", "INPUT", "1", *rule)
        if result.returncode != 0:
            log.error("iptables -I INPUT %s: %s", " ".join(rule), result.stderr.strip())
            return False
    log.info("firewall: traffic from %s into the host is dropped", bridge)
    return True


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True)
