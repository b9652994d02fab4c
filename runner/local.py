"""The local backend: spaces as containers on this host's Docker engine (runner/docker_runtime.py),
published on 127.0.0.1, on the instance's bridge behind the runner's firewall."""

from collections.abc import Iterator
from threading import Event

from runner import docker_runtime, firewall
from runner.backend import Instance, RuntimeBackendError, Spec, parse_started
from spacedock.labels import LABEL_SPACE

# Container events that change what the runner should do.
CHANGES = ("die", "stop", "start", "destroy", "oom")


def instance(container) -> Instance:
    state = docker_runtime.state(container)
    ports = {}
    for name, bindings in (container.attrs["NetworkSettings"]["Ports"] or {}).items():
        for binding in bindings or []:
            if binding.get("HostIp") in ("127.0.0.1", "") and binding.get("HostPort"):
                ports.setdefault(int(name.split("/")[0]), int(binding["HostPort"]))
    return Instance(
        id=container.id,
        status=container.status,
        labels=container.labels,
        ports=ports,
        restart_count=container.attrs.get("RestartCount", 0),
        exit_code=state.get("ExitCode"),
        started_at=parse_started(state.get("StartedAt", "")),
    )


class LocalBackend:
    name = "local"
    can_freeze = True

    def prepare(self) -> str:
        docker_runtime.ensure_network()
        return firewall.check()

    def instances(self, space_id: int | None = None) -> list[Instance]:
        return [instance(c) for c in docker_runtime.containers(space_id)]

    def get(self, instance_id: str) -> Instance | None:
        container = docker_runtime.get(instance_id)
        return instance(container) if container is not None else None

    def run(self, spec: Spec) -> Instance:
        return instance(docker_runtime.run(spec))

    def stop(self, instance_id: str) -> None:
        docker_runtime.stop(instance_id)

    def remove(self, instance_id: str) -> None:
        docker_runtime.remove(instance_id)

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
                space = event.get("Actor", {}).get("Attributes", {}).get(LABEL_SPACE)
                kind = "oom" if status == "oom" else "changed"
                yield (kind, int(space) if space else None, event.get("id", ""))
        except RuntimeBackendError:
            return
