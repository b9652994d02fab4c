"""A real three-node Docker Swarm for the cluster tests (deploy/swarm-lab.sh), and space images in
Spacedock's registry for it to pull.

The nodes are extra engines in network namespaces this fixture creates (198.18.210.0/24, none of
the main or build engine's ranges, nor the bench's lab's); the swarm's manager is the first of
them, never the shared main engine. Everything goes at the end, whatever the tests did to the nodes.
"""

import subprocess
from dataclasses import dataclass

import docker
import pytest
from django.conf import settings

from tests.conftest import ROOT, process_env

LAB = "sdsw"


@dataclass
class Node:
    index: int
    address: str
    socket: str

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.socket, timeout=60)


@dataclass
class Lab:
    nodes: list[Node]

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    def node_at(self, address: str) -> Node:
        return next(n for n in self.nodes if n.address == address)

    def node_id(self, node: Node) -> str:
        return node.client().info()["Swarm"]["NodeID"]

    def kill(self, node: Node) -> None:
        script("kill", str(node.index))

    def drain(self, node: Node) -> None:
        self.manager.client().api.update_node(
            self.node_id(node),
            version=self.manager.client().api.inspect_node(self.node_id(node))["Version"]["Index"],
            node_spec={
                **self.manager.client().api.inspect_node(self.node_id(node))["Spec"],
                "Availability": "drain",
            },
        )


def script(*args: str, lab: str = LAB, net: int = 210) -> str:
    """deploy/swarm-lab.sh; the bench's lab has another name and network base than the tests', so
    a bench and a test run never take down each other's nodes."""
    result = subprocess.run(
        ["bash", "deploy/swarm-lab.sh", *args], cwd=ROOT, capture_output=True, text=True, timeout=180,
        env=process_env(
            SPACEDOCK_SWARM_LAB=lab, SPACEDOCK_SWARM_LAB_NET=str(net), SPACEDOCK_REGISTRY=settings.REGISTRY
        ),
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"swarm-lab.sh {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


@pytest.fixture(scope="module")
def swarm_lab(registry):
    out = script("up", "3")
    nodes = []
    for line in out.splitlines():
        _, index, address, sock = line.split()
        nodes.append(Node(int(index), address, sock))
    try:
        yield Lab(nodes)
    finally:
        script("down")


def push(image: str, name: str) -> str:
    """Copies a test image into the registry; the answer is the reference by digest nodes pull."""
    client = docker.from_env(timeout=300)
    from runner.swarm import registry_password

    auth = {"username": settings.REGISTRY_USER, "password": registry_password()}
    repository = f"{settings.REGISTRY}/{settings.INSTANCE}/{name}"
    client.images.get(image).tag(repository, "lab")
    digest = ""
    try:
        for line in client.api.push(repository, "lab", auth_config=auth, stream=True, decode=True):
            if line.get("error"):
                raise RuntimeError(f"push {repository}: {line['error']}")
            digest = (line.get("aux") or {}).get("Digest", digest)
    finally:
        client.images.remove(f"{repository}:lab", noprune=True)
    assert digest, f"no digest for {repository}"
    return f"{repository}@{digest}"
