"""What the reconcile loop asks of a place that runs spaces: the runtime backend interface.

The database is the desired state; a backend only runs, lists, stops and removes instances of
spaces, and says where each one answers. Two backends: `local` (runner/local.py: containers on
the host's Docker engine, published on 127.0.0.1) and `swarm` (runner/swarm.py: one Swarm
service per running space, published in host mode on the node Swarm placed it on). Chosen by
SPACEDOCK_RUNTIME_BACKEND.

A sleeping space is frozen where the backend can freeze (`can_freeze`: its instance paused in
place, memory kept, thawed by a visit) and otherwise removed (deep sleep); runner/reconcile.py
decides which, within the frozen tier's memory budget.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from threading import Event
from typing import Protocol

from django.conf import settings


class RuntimeBackendError(Exception):
    """The backend refused or failed; the message says what, for the space's page and log."""


@dataclass
class Spec:
    """One instance of a space to start: what runs, with which limits, and where it may go."""

    space_id: int
    name_hint: str
    image: str
    target: str
    generation: int
    env: dict
    app_port: int
    memory_mb: int  # the hardware flavour's (spacedock.hardware.place), or the space's own limit
    cpus: float
    pids: int
    # Placement constraints in Swarm's syntax (`node.labels.gpu==true`); one host has only itself.
    constraints: list[str] = field(default_factory=list)
    # Bind mounts of its volumes (docker.types.Mount, from spacedock.buckets.volume_mounts).
    mounts: list = field(default_factory=list)
    # The GPUs assigned to it (GpuAssignment ids); none on a CPU flavour.
    gpus: list[str] = field(default_factory=list)
    # Labels of its own besides the runner's (LABEL_DEPLOYMENT on a pin's or a preview's).
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Instance:
    """A space's running copy as the backend sees it: a container, or a service and its task.

    `status` uses Docker's container words: created, running, paused, restarting, exited, dead.
    """

    id: str
    status: str
    labels: dict
    address: str = "127.0.0.1"  # where Caddy dials it
    ports: dict[int, int] = field(default_factory=dict)  # app port -> published port
    restart_count: int = 0
    exit_code: int | None = None
    started_at: datetime | None = None
    node: str = ""  # the node it runs on (swarm)
    # Why it cannot be placed at all (swarm: no node matches its constraints or has the memory).
    unschedulable: str = ""
    # A warm pool container the space adopted (runner/pool.py), not one started for it.
    warm: bool = False
    # It serves on a node that is going away (drained, or down): the runner starts a successor
    # elsewhere, as for a new version, and retires this one once the successor is routed.
    moving: bool = False

    def port(self, app_port: int | None = None) -> int | None:
        """The published port of the app's port; without one, of the one port it publishes."""
        if app_port is None:
            return next(iter(self.ports.values()), None)
        return self.ports.get(app_port)

    def dial(self, app_port: int | None = None) -> str:
        port = self.port(app_port)
        return f"{self.address}:{port}" if port else ""


def parse_started(raw: str) -> datetime | None:
    try:  # Docker gives nanoseconds, which fromisoformat cannot read; seconds are enough here
        started = datetime.fromisoformat(raw[:19]).replace(tzinfo=UTC)
    except (ValueError, TypeError):
        return None
    return None if started.year < 2000 else started  # "0001-01-01": never started


class Backend(Protocol):
    name: str
    # Whether a sleeping space's instance can be frozen and thawed in place (freeze, thaw, memory):
    # the local backend can; a Swarm manager cannot pause a container on another node, so there a
    # sleeping space is always removed (deep sleep).
    can_freeze: bool

    def prepare(self) -> str:
        """Networks, firewall, registry login: whatever must exist before instances start (cheap
        when in place; called every half minute). The reason no space may start, or ""."""

    def instances(self, space_id: int | None = None) -> list[Instance]:
        """This Spacedock instance's space instances (one space's, or all), whatever their state."""

    def get(self, instance_id: str) -> Instance | None:
        """The instance as it is now, or None when it is gone."""

    def run(self, spec: Spec) -> Instance: ...

    def stop(self, instance_id: str) -> None: ...

    def warm(self) -> None:
        """Keeps the warm pool as the spaces need it (the local backend's, runner/pool.py); called in
        the background every pass, it does its work every few seconds or after an adoption."""

    def remove(self, instance_id: str) -> None:
        """Stops and removes; one already gone is fine."""

    def tail(self, instance_id: str, lines: int = 30) -> str: ...

    def freeze(self, instance_id: str) -> None:
        """Pauses it with the cgroup freezer: no CPU, its memory kept (can_freeze backends only)."""

    def thaw(self, instance_id: str) -> None:
        """Unpauses a frozen instance."""

    def memory(self, instance_id: str) -> int:
        """The bytes its cgroup holds now; 0 when it is gone (no cgroup, no memory)."""

    def exit_code(self, instance: Instance) -> int | None:
        """The code its last run exited with, also after the restart policy started it again."""
        ...

    def follow(self, instance_id: str, since: int | None = None) -> Iterator[str]:
        """Its log lines as they come, until it stops."""

    def events(self, stop_flag: Event) -> Iterator[tuple[str, int | None, str]]:
        """(kind, space id, instance id) as things change: kind "oom" or "changed"; ends when the
        backend goes away."""


_backend: Backend | None = None


def backend() -> Backend:
    """The backend SPACEDOCK_RUNTIME_BACKEND names, made once per process."""
    global _backend
    if _backend is None or _backend.name != settings.RUNTIME_BACKEND:
        if settings.RUNTIME_BACKEND == "swarm":
            from runner.swarm import SwarmBackend

            _backend = SwarmBackend()
        else:
            from runner.local import LocalBackend

            _backend = LocalBackend()
    return _backend
