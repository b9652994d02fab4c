"""Every Docker call of the local backend (runner/local.py): SDK errors become RuntimeBackendError,
and nothing is left behind.

Containers live on one bridge network per instance, with traffic between containers off and
(see firewall.py) no way into the host, so a space reaches the internet but not the platform.
"""

import hashlib
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import docker.errors
import requests
from django.conf import settings

from runner import logstream
from runner.backend import RuntimeBackendError, Spec, parse_started
from spacedock.hardware.resources import gpu_request
from spacedock.labels import LABEL_GENERATION, LABEL_INSTANCE, LABEL_SPACE, LABEL_TARGET, LABEL_WARM

__all__ = ["LABEL_GENERATION", "LABEL_INSTANCE", "LABEL_SPACE", "LABEL_TARGET", "RuntimeBackendError", "Spec"]

log = logging.getLogger(__name__)


@contextmanager
def errors(action: str) -> Iterator[None]:
    try:
        yield
    except docker.errors.DockerException as exc:
        raise RuntimeBackendError(f"{action}: {_explain(exc)}") from exc
    except requests.RequestException as exc:
        raise RuntimeBackendError(f"{action}: the Docker engine did not answer ({exc})") from exc


def _explain(exc: Exception) -> str:
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)
    return str(exc)


_client = None


def client() -> docker.DockerClient:
    global _client
    if _client is None:
        with errors("connecting to Docker"):
            _client = docker.from_env(timeout=60)
    return _client


def network_name() -> str:
    return f"{settings.INSTANCE}-spaces"


def bridge_name() -> str:
    # Linux caps interface names at 15 characters.
    return "sd-" + hashlib.sha256(settings.INSTANCE.encode()).hexdigest()[:10]


def ensure_network() -> str:
    """The instance's network for spaces, made once: no traffic between its containers."""
    name = network_name()
    with errors(f"creating network {name}"):
        found = client().networks.list(names=[name])
        if not any(n.name == name for n in found):
            client().networks.create(
                name,
                driver="bridge",
                labels={LABEL_INSTANCE: settings.INSTANCE},
                options={
                    "com.docker.network.bridge.enable_icc": "false",
                    "com.docker.network.bridge.name": bridge_name(),
                },
            )
    return name


def gateway(net: str) -> str:
    """The host's address on the spaces' network."""
    with errors(f"reading the network {net}"):
        return client().networks.get(net).attrs["IPAM"]["Config"][0]["Gateway"]


def hardened(memory_mb: int, cpus: float, pids: int, app_port: int, net: str) -> dict:
    """What every container that runs a space's app is created with, besides its image, name, labels
    and environment: a space's own (run) and a warm pool's (run_pool), which a space adopts."""
    return {
        "user": settings.RUN_USER,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "mem_limit": f"{memory_mb}m",
        "memswap_limit": f"{memory_mb}m",
        "nano_cpus": int(cpus * 1e9),
        "pids_limit": pids,
        "ports": {f"{app_port}/tcp": ("127.0.0.1", None)},
        "network": net,
        # The host, as a space's server reaches it through the firewall's one door (Caddy's
        # public port): the default OPENID_PROVIDER_URL on a localhost install. The spaces'
        # own gateway, not Docker's "host-gateway" (docker0's address), which an engine
        # started without a default bridge cannot give.
        "extra_hosts": {"host.docker.internal": gateway(net)},
        "restart_policy": {"Name": "on-failure", "MaximumRetryCount": settings.RUN_RESTART_RETRIES},
        "log_config": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "2"}},
        "init": True,
        # gVisor where the operator registered it (docs/security.md): another kernel in between.
        "runtime": settings.CONTAINER_RUNTIME or None,
    }


def spec_labels(spec: Spec) -> dict[str, str]:
    """The labels of a space's container: run() sets them, and an adopted pool container's
    runner.Adoption row holds them."""
    return {
        LABEL_INSTANCE: settings.INSTANCE,
        LABEL_SPACE: str(spec.space_id),
        LABEL_TARGET: spec.target,
        LABEL_GENERATION: str(spec.generation),
        **spec.labels,
    }


def container_name(spec: Spec) -> str:
    return f"{settings.INSTANCE}-{spec.name_hint}-{uuid.uuid4().hex[:6]}"


def run(spec: Spec):
    """Starts a hardened container for a space; published on 127.0.0.1 at a port Docker picks."""
    net = ensure_network()
    container = None
    try:
        with errors(f"starting {spec.image}"):
            container = client().containers.create(
                spec.image,
                name=container_name(spec),
                # LABEL_WARM cleared, as the builder clears it on its images: an image made
                # elsewhere that names it still makes no container the pool would take for its own.
                labels={**spec_labels(spec), LABEL_WARM: ""},
                environment={**spec.env, "PORT": str(spec.app_port)},
                mounts=spec.mounts or None,
                # Exactly the GPUs place() assigned, by id: a count would let the engine pick one
                # another space holds.
                device_requests=[gpu_request(spec.gpus)] if spec.gpus else None,
                **hardened(spec.memory_mb, spec.cpus, spec.pids, spec.app_port, net),
            )
            container.start()
            container.reload()
        return container
    except RuntimeBackendError:
        if container is not None:
            remove(container.id)
        raise


def published_port(container, app_port: int | None = None) -> int | None:
    """The host port for the app's port; without one, for the one port run() published."""
    ports = container.attrs["NetworkSettings"]["Ports"] or {}
    if app_port is None:
        bindings = [b for found in ports.values() for b in found or []]
    else:
        bindings = ports.get(f"{app_port}/tcp") or []
    for binding in bindings:
        if binding.get("HostIp") in ("127.0.0.1", "") and binding.get("HostPort"):
            return int(binding["HostPort"])
    return None


def unless_gone(action: str, call):
    """call(), or None when the engine says what it names does not exist."""
    try:
        with errors(action):
            return call()
    except RuntimeBackendError as exc:
        if isinstance(exc.__cause__, docker.errors.NotFound):
            return None
        raise


def get(container_id: str):
    """The container, or None when it is gone."""
    if not container_id:
        return None
    return unless_gone(f"inspecting {container_id[:12]}", lambda: client().containers.get(container_id))


def listed(action: str, filters: dict) -> list:
    """The containers the filters match, each inspected; one removed between the listing and its
    inspection is left out (docker-py's own full listing raises NotFound for it)."""
    with errors(action):
        found = client().containers.list(all=True, filters=filters, sparse=True)
    return [c for c in map(get, (c.id for c in found)) if c is not None]


def containers(space_id: int | None = None) -> list:
    """This instance's space containers, running or not; never another instance's.

    Space images carry the instance and space labels, so a container someone starts by hand
    from one has them too; only `run` sets the generation, and that marks the runner's own.
    """
    filters = {"label": [f"{LABEL_INSTANCE}={settings.INSTANCE}", LABEL_GENERATION]}
    if space_id is not None:
        filters["label"].append(f"{LABEL_SPACE}={space_id}")
    found = listed("listing containers", filters)
    return [
        c for c in found if c.labels.get(LABEL_INSTANCE) == settings.INSTANCE and LABEL_GENERATION in c.labels
    ]


def stop(container_id: str, timeout: int = 10) -> None:
    container = get(container_id)
    if container is None:
        return
    try:
        with errors(f"stopping {container_id[:12]}"):
            container.stop(timeout=timeout)
    except RuntimeBackendError as exc:
        log.warning("%s", exc)


def remove(container_id: str) -> None:
    """Stops and removes; a container that is already gone is fine."""
    try:
        with errors(f"removing {container_id[:12]}"):
            client().api.remove_container(container_id, force=True)
    except RuntimeBackendError as exc:
        if not isinstance(exc.__cause__, docker.errors.NotFound):
            raise


def pause(container_id: str) -> None:
    """Freezes every process of the container (the cgroup freezer): no CPU, its memory kept."""
    with errors(f"pausing {container_id[:12]}"):
        client().api.pause(container_id)


def unpause(container_id: str) -> None:
    with errors(f"unpausing {container_id[:12]}"):
        client().api.unpause(container_id)


def memory(container_id: str) -> int:
    """The bytes the container's cgroup holds, from the engine's stats (memory_stats.usage:
    memory.usage_in_bytes on cgroup v1, memory.current on v2); 0 when it is gone. One sample
    (one_shot), not the stats stream's two a second apart."""
    stats = unless_gone(
        f"reading the memory of {container_id[:12]}",
        lambda: client().api.stats(container_id, stream=False, one_shot=True),
    )
    return int(((stats or {}).get("memory_stats") or {}).get("usage") or 0)


def tail(container_id: str, lines: int = 30) -> str:
    try:
        with errors(f"reading the log of {container_id[:12]}"):
            raw = client().api.logs(container_id, stdout=True, stderr=True, tail=lines)
        return raw.decode("utf-8", "replace").rstrip()
    except RuntimeBackendError as exc:
        return f"(no log: {exc})"


def follow(container_id: str, since: int | None = None) -> Iterator[str]:
    """The container's log lines as they come, until it stops."""
    with errors(f"following the log of {container_id[:12]}"):
        stream = client().api.logs(container_id, stream=True, follow=True, since=since)
    try:
        yield from logstream.split_lines(stream)
    except (docker.errors.DockerException, requests.RequestException):
        return


def state(container) -> dict:
    return container.attrs.get("State", {})


def bridge_address(container) -> str:
    """The container's address on the spaces' network; empty when it has none (not running)."""
    networks = container.attrs.get("NetworkSettings", {}).get("Networks") or {}
    return (networks.get(network_name()) or {}).get("IPAddress") or ""


def last_exit_code(container_id: str) -> int | None:
    """The code the container's last run exited with. After an on-failure restart, inspect shows
    the new run's state (ExitCode 0); the engine's `die` events keep each run's code."""
    container = get(container_id)
    if container is None:
        return None
    if container.attrs.get("RestartCount", 0) == 0:
        return state(container).get("ExitCode")
    created = parse_started(container.attrs.get("Created", ""))
    since = int(created.timestamp()) if created else int(time.time()) - 3600
    code = None
    with errors(f"reading the events of {container_id[:12]}"):
        died = client().events(
            since=since, until=int(time.time()) + 1, decode=True,
            filters={"container": container.id, "event": "die"},
        )  # fmt: skip
        for event in died:
            code = (event.get("Actor") or {}).get("Attributes", {}).get("exitCode", code)
    return int(code) if code is not None else state(container).get("ExitCode")


def events(stop_flag) -> Iterator[dict]:
    """Container events of this instance; ends when the engine goes away."""
    filters = {"type": "container", "label": f"{LABEL_INSTANCE}={settings.INSTANCE}"}
    with errors("listening to Docker events"):
        stream = docker.from_env(timeout=None).events(decode=True, filters=filters)
    try:
        for event in stream:
            if stop_flag.is_set():
                return
            yield event
    except (docker.errors.DockerException, requests.RequestException):
        return
    finally:
        stream.close()


# -- the warm pool (runner/pool.py) ------------------------------------------------------------
# A pool container is created as run() creates a space's (`hardened`), from the pool image, with the
# agent (runner/pool_agent.py) as its command. What a space brings reaches it through the archive
# API, never through its config: its files, and its environment in a file only its user can read.

POOL_AGENT = (Path(__file__).resolve().parent / "pool_agent.py").read_text()


def pool_prefix() -> str:
    """How an idle pool container's name starts ("--" is in no subdomain, so in no space's name)."""
    return f"{settings.INSTANCE}--pool-"


def run_pool(image: str, env: dict[str, str], app_port: int) -> str:
    """Starts an idle pool container of `image` with the spaces' default limits; its id."""
    net = ensure_network()
    container = None
    try:
        with errors(f"starting a pool container of {image}"):
            container = client().containers.create(
                image,
                command=["python", "-c", POOL_AGENT],
                name=f"{pool_prefix()}{uuid.uuid4().hex[:12]}",
                labels={LABEL_INSTANCE: settings.INSTANCE, LABEL_WARM: image},
                environment=env,
                **hardened(settings.RUN_MEMORY_MB, settings.RUN_CPUS, settings.RUN_PIDS, app_port, net),
            )
            container.start()
        return container.id
    except RuntimeBackendError:
        if container is not None:
            remove(container.id)
        raise


def pool_containers() -> list:
    """This instance's pool containers, idle or adopted, running or not: those run_pool made (no
    image carries a LABEL_WARM that is not "")."""
    filters = {"label": [f"{LABEL_INSTANCE}={settings.INSTANCE}", LABEL_WARM]}
    return [c for c in listed("listing pool containers", filters) if c.labels.get(LABEL_WARM)]


def wait_for_line(container_id: str, line: str) -> bool:
    """Follows the container's output until it prints `line` (True) or stops (False)."""
    with errors(f"following {container_id[:12]}"):
        stream = client().api.logs(container_id, stream=True, follow=True, stdout=True, stderr=False)
    try:
        seen = b""
        for chunk in stream:
            seen = seen[-len(line) :] + chunk
            if line.encode() in seen:
                return True
    except (docker.errors.DockerException, requests.RequestException):
        pass  # the engine went away: not ready, as far as anyone can tell
    finally:
        stream.close()
    return False


def printed(container_id: str, line: str) -> bool:
    """Whether the container printed `line` among its last lines (one a runner before this started)."""
    with errors(f"reading the log of {container_id[:12]}"):
        return line.encode() in client().api.logs(container_id, stdout=True, stderr=False, tail=20)


def inspect_image(ref: str) -> dict | None:
    """The image's inspect data, or None when the engine does not have it."""
    return unless_gone(f"inspecting image {ref}", lambda: client().api.inspect_image(ref))


def copy_folder(image: str, path: str, container_id: str, into: str) -> None:
    """Copies the folder `path` of an image (owners and modes kept) into the folder `into` of a
    container, streamed from a container created from the image and never started."""
    with errors(f"copying {path} of {image} into {container_id[:12]}"):
        reader = client().api.create_container(
            image,
            command=["true"],
            labels={LABEL_INSTANCE: settings.INSTANCE, LABEL_WARM: ""},
            network_disabled=True,
        )["Id"]
        try:
            stream, _ = client().api.get_archive(reader, path)
            client().api.put_archive(container_id, into, stream)
        finally:
            client().api.remove_container(reader, force=True)


def put_files(container_id: str, path: str, archive: bytes) -> None:
    with errors(f"copying files into {container_id[:12]}"):
        client().api.put_archive(container_id, path, archive)


def rename(container_id: str, name: str) -> None:
    with errors(f"renaming {container_id[:12]}"):
        client().api.rename(container_id, name)


def set_limits(container_id: str, memory_mb: int, cpus: float, pids: int) -> None:
    """A running container's limits, as hardened() gives them. docker-py's update_container knows
    neither NanoCpus nor PidsLimit, which the engine's update takes (API 1.40): posted as it is."""
    api = client().api
    mb = memory_mb * 2**20
    body = {"Memory": mb, "MemorySwap": mb, "NanoCpus": int(cpus * 1e9), "PidsLimit": pids}
    with errors(f"setting the limits of {container_id[:12]}"):
        api._result(api._post_json(api._url("/containers/{0}/update", container_id), data=body), True)


def send_signal(container_id: str, name: str) -> None:
    with errors(f"signalling {container_id[:12]}"):
        client().api.kill(container_id, signal=name)
