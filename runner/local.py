"""The local backend: spaces as containers on this host's Docker engine (runner/docker_runtime.py),
published on 127.0.0.1, on the instance's bridge behind the runner's firewall.

A space's container is one docker_runtime.run started, or a warm pool container it adopted
(runner/pool.py): Docker cannot relabel a running container, so an adopted one's labels are its
runner.Adoption row's, read over the pool's own, and the loop sees it as any space's container.
"""

import time
from collections.abc import Iterator
from threading import Event

from runner import docker_runtime, firewall, pool
from runner.backend import Instance, RuntimeBackendError, Spec, parse_started
from runner.models import Adoption
from spacedock.labels import LABEL_SPACE, LABEL_WARM

# Container events that change what the runner should do.
CHANGES = ("die", "stop", "start", "destroy", "oom")
# Seconds between two refills of the warm pool when no adoption asks for one sooner.
REFILL_SECONDS = 10


def instance(container, adoption: Adoption | None = None) -> Instance:
    state = docker_runtime.state(container)
    # Caddy dials the app at its address on the spaces' bridge, not at its published port: that
    # one is docker-proxy's, a userland copy of every byte (~110 µs of CPU per request, as much
    # as a third of Caddy's own). The port is still published (an operator's curl, the bench).
    address = docker_runtime.bridge_address(container)
    ports = {}
    for name, bindings in (container.attrs["NetworkSettings"]["Ports"] or {}).items():
        app_port = int(name.split("/")[0])
        for binding in bindings or []:
            if binding.get("HostIp") in ("127.0.0.1", "") and binding.get("HostPort"):
                ports.setdefault(app_port, app_port if address else int(binding["HostPort"]))
    started = parse_started(state.get("StartedAt", ""))
    if adoption is not None and (started is None or started < adoption.adopted_at):
        started = adoption.adopted_at  # the app's start, not the pool's (a space's idle time counts from it)
    return Instance(
        id=container.id,
        status=container.status,
        labels={**container.labels, **adoption.labels} if adoption is not None else container.labels,
        address=address or "127.0.0.1",
        ports=ports,
        restart_count=container.attrs.get("RestartCount", 0),
        exit_code=state.get("ExitCode"),
        started_at=started,
        warm=adoption is not None,
    )


class LocalBackend:
    name = "local"
    can_freeze = True

    def prepare(self) -> str:
        docker_runtime.ensure_network()
        return firewall.check()

    def __init__(self):
        self.refilled = 0.0  # time.monotonic() of the last refill; 0: one is due

    def instances(self, space_id: int | None = None) -> list[Instance]:
        started = [instance(c) for c in docker_runtime.containers(space_id)]
        return started + [instance(c, row) for c, row in pool.adopted(space_id)]

    def get(self, instance_id: str) -> Instance | None:
        container = docker_runtime.get(instance_id)
        if container is None:
            return None
        if container.labels.get(LABEL_WARM):
            return instance(container, Adoption.objects.filter(container_id=instance_id).first())
        return instance(container)

    def run(self, spec: Spec) -> Instance:
        adopted = pool.adopt(spec) if pool.enabled() else None
        if adopted is not None:
            self.refilled = 0.0  # one fewer in the pool: refill on the next pass
            found = self.get(adopted)
            if found is not None:
                return found
        return instance(docker_runtime.run(spec))

    def warm(self) -> None:
        if time.monotonic() - self.refilled < REFILL_SECONDS:
            return
        self.refilled = time.monotonic()
        pool.refill()

    def stop(self, instance_id: str) -> None:
        docker_runtime.stop(instance_id)

    def remove(self, instance_id: str) -> None:
        pool.forget(instance_id)  # an adopted container's row goes with it

    def tail(self, instance_id: str, lines: int = 30) -> str:
        return docker_runtime.tail(instance_id, lines)

    def freeze(self, instance_id: str) -> None:
        docker_runtime.pause(instance_id)

    def thaw(self, instance_id: str) -> None:
        docker_runtime.unpause(instance_id)

    def memory(self, instance_id: str) -> int:
        return docker_runtime.memory(instance_id)

    def exit_code(self, instance: Instance) -> int | None:
        if instance.restart_count == 0:
            return instance.exit_code
        return docker_runtime.last_exit_code(instance.id)

    def follow(self, instance_id: str, since: int | None = None) -> Iterator[str]:
        return docker_runtime.follow(instance_id, since)

    def events(self, stop_flag: Event) -> Iterator[tuple[str, int | None, str]]:
        try:
            for event in docker_runtime.events(stop_flag):
                status = event.get("status")
                if status not in CHANGES:
                    continue
                attributes = event.get("Actor", {}).get("Attributes", {})
                space = attributes.get(LABEL_SPACE)
                if space is None and attributes.get(LABEL_WARM) and status == "oom":
                    space = pool.space_of(event.get("id", ""))  # an adopted container's
                kind = "oom" if status == "oom" else "changed"
                yield (kind, int(space) if space else None, event.get("id", ""))
        except RuntimeBackendError:
            return
