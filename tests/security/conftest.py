"""Hosts that an attacker would aim at, made on this machine: never a packet leaves it.

`fake_hosts` stands up a network namespace of the test's own, linked to the host by a veth pair,
holding the cloud metadata address 169.254.169.254 and a private 10.x address, each with a tiny
HTTP server, routed to from the host; and a server on the host itself, on every address (0.0.0.0),
as Caddy's admin API or gunicorn would be. Each answers from the host before a test uses it, so a
test that finds it unreachable from a build or a space has shown a wall, not a typo.
"""

import random
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port, wait_until

METADATA = "169.254.169.254"


@dataclass
class FakeHosts:
    metadata: str
    private: str
    host_port: int
    host_addresses: list[str]
    canaries: dict[str, str] = field(default_factory=dict)

    def urls(self) -> dict[str, str]:
        """What an attacker asks, with the answer it would get if nothing stopped it."""
        found = {
            f"http://{self.metadata}/latest/meta-data/": self.canaries["metadata"],
            f"http://{self.private}/": self.canaries["private"],
        }
        for address in self.host_addresses:
            found[f"http://{address}:{self.host_port}/"] = self.canaries["host"]
        return found


def _ip(*args: str, ns: str | None = None) -> None:
    command = ["ip", *(["-n", ns] if ns else []), *args]
    subprocess.run(command, check=True, capture_output=True, text=True)


def _host_addresses() -> list[str]:
    listing = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True)
    addresses = [line.split()[3].split("/")[0] for line in listing.stdout.splitlines()]
    return [a for a in addresses if not a.startswith("127.")]


def _serve(directory: Path, bind: str, port: int, ns: str | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "http.server", "--bind", bind, "--directory", str(directory), str(port)]
    if ns:
        command = ["nsenter", f"--net=/run/netns/{ns}", *command]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _answers(url: str, text: str):
    def check():
        try:
            return text in requests.get(url, timeout=2).text
        except requests.RequestException:
            return False

    return check


@pytest.fixture(scope="module")
def fake_hosts(tmp_path_factory):
    """One set per module: the hosts only answer, no test changes them, and standing them up (a
    namespace, three Python servers, each waited for) took ~10 s, paid before each egress test."""
    tmp_path = tmp_path_factory.mktemp("fake-hosts")
    tag = uuid.uuid4().hex[:6]
    ns, host_if, ns_if = f"sdtest-{tag}", f"sdth-{tag}", f"sdtn-{tag}"
    # A /30 of the benchmarking range for the link; the private host gets an address of its own.
    base = 4 * random.randrange(64)
    link_host, link_ns = f"198.18.251.{base + 1}", f"198.18.251.{base + 2}"
    private = f"10.213.{random.randrange(256)}.{random.randrange(2, 250)}"
    canaries = {name: f"{name}-canary-{uuid.uuid4().hex}" for name in ("metadata", "private", "host")}
    servers: list[subprocess.Popen] = []
    routes = []
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", ns)
        _ip("addr", "add", f"{link_host}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("addr", "add", f"{link_ns}/30", "dev", ns_if, ns=ns)
        _ip("link", "set", ns_if, "up", ns=ns)
        _ip("link", "set", "lo", "up", ns=ns)
        _ip("route", "add", "default", "via", link_host, ns=ns)
        for address in (METADATA, private):
            # On the namespace's loopback: this kernel has no dummy interfaces.
            _ip("addr", "add", f"{address}/32", "dev", "lo", ns=ns)
            _ip("route", "add", f"{address}/32", "via", link_ns)
            routes.append(address)
        for name, address in (("metadata", METADATA), ("private", private)):
            root = tmp_path / name
            (root / "latest" / "meta-data").mkdir(parents=True)
            (root / "index.html").write_text(canaries[name])
            (root / "latest" / "meta-data" / "index.html").write_text(canaries[name])
            servers.append(_serve(root, address, 80, ns=ns))
        port = free_port()
        (tmp_path / "host").mkdir()
        (tmp_path / "host" / "index.html").write_text(canaries["host"])
        servers.append(_serve(tmp_path / "host", "0.0.0.0", port))
        hosts = FakeHosts(METADATA, private, port, _host_addresses(), canaries)
        # Each answers from the host: a test that finds them unreachable shows a wall.
        for url, canary in {**hosts.urls(), f"http://127.0.0.1:{port}/": canaries["host"]}.items():
            wait_until(_answers(url, canary), 15, f"{url} to answer from the host")
        yield hosts
    finally:
        for server in servers:
            server.terminate()
            server.wait(5)
        for address in routes:
            subprocess.run(["ip", "route", "del", f"{address}/32"], capture_output=True)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


PROBE = """
import sys, urllib.error, urllib.request
from concurrent.futures import ThreadPoolExecutor

def probe(url):
    try:
        body = urllib.request.urlopen(url, timeout=3).read().decode(errors="replace")
        return f"REACHED {url} {body[:80]}"
    except urllib.error.HTTPError as exc:  # an answer all the same
        return f"REACHED {url} HTTP {exc.code}"
    except Exception as exc:
        return f"BLOCKED {url} {type(exc).__name__}"

with ThreadPoolExecutor(16) as pool:
    for line in pool.map(probe, sys.argv[1:]):
        print(line, flush=True)
"""
