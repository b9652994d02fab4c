"""The warm pool's Docker calls on the local engine (runner/pool.py holds the logic).

A pool container is created exactly as docker_runtime.run creates a space's (`hardened`: the same
user, capabilities, limits, network, published port, restart and log policy), from the pool
image, with the agent (runner/pool_agent.py) as its command. Everything a space brings reaches it
through the archive API, never through its config: its files, and its environment in a file only
the spaces' user can read.
"""

import io
import logging
import tarfile
import uuid
from pathlib import Path

import docker.errors
from django.conf import settings

from runner.backend import RuntimeBackendError
from runner.docker_runtime import client, ensure_network, errors, gateway
from spacedock.labels import LABEL_INSTANCE, LABEL_POOL

log = logging.getLogger(__name__)

AGENT = (Path(__file__).resolve().parent / "pool_agent.py").read_text()


def hardened(memory_mb: int, cpus: float, pids: int, app_port: int, net: str) -> dict:
    """What every container of a space is created with, besides its image, name, labels and env."""
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
        # public port): the default OPENID_PROVIDER_URL on a localhost install.
        "extra_hosts": {"host.docker.internal": gateway(net)},
        "restart_policy": {"Name": "on-failure", "MaximumRetryCount": settings.RUN_RESTART_RETRIES},
        "log_config": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "2"}},
        "init": True,
        # gVisor where the operator registered it (docs/security.md): another kernel in between.
        "runtime": settings.CONTAINER_RUNTIME or None,
    }


def pool_name() -> str:
    # "--" never occurs in a subdomain, so no space container's name starts like an idle one's.
    return f"{settings.INSTANCE}--pool-"


def create(image: str, env: dict[str, str], app_port: int) -> str:
    """Starts an idle pool container of `image`, with the spaces' default limits; its id."""
    net = ensure_network()
    container = None
    try:
        with errors(f"starting a pool container of {image}"):
            container = client().containers.create(
                image,
                command=["python", "-c", AGENT],
                name=f"{pool_name()}{uuid.uuid4().hex[:12]}",
                labels={LABEL_INSTANCE: settings.INSTANCE, LABEL_POOL: image},
                environment=env,
                **hardened(settings.RUN_MEMORY_MB, settings.RUN_CPUS, settings.RUN_PIDS, app_port, net),
            )
            container.start()
        return container.id
    except RuntimeBackendError:
        if container is not None:
            remove(container.id)
        raise


def listed() -> list:
    """This instance's pool containers, idle or adopted, running or not. (A space image names its pool
    image too, and a container inherits its image's labels: files_of's reader sets it to "".)"""
    filters = {"label": [f"{LABEL_INSTANCE}={settings.INSTANCE}", LABEL_POOL]}
    with errors("listing pool containers"):
        found = client().containers.list(all=True, filters=filters)
    ours = [c for c in found if c.labels.get(LABEL_INSTANCE) == settings.INSTANCE]
    return [c for c in ours if c.labels.get(LABEL_POOL)]


def get(container_id: str):
    try:
        with errors(f"inspecting {container_id[:12]}"):
            return client().containers.get(container_id)
    except RuntimeBackendError as exc:
        if isinstance(exc.__cause__, docker.errors.NotFound):
            return None
        raise


def wait_ready(container_id: str, line: str) -> bool:
    """Follows the container's output until the agent says `line` (True) or the container stops."""
    with errors(f"following {container_id[:12]}"):
        stream = client().api.logs(container_id, stream=True, follow=True, stdout=True, stderr=False)
    try:
        buffered = b""
        for chunk in stream:
            buffered += chunk
            if line.encode() in buffered:
                return True
            buffered = buffered[-len(line) :]
    except Exception as exc:  # the engine went away: not ready, as far as anyone can tell
        log.warning("pool: following %s: %s", container_id[:12], exc)
    finally:
        stream.close()
    return False


def said(container_id: str, line: str) -> bool:
    """Whether the agent has said `line` (a container a runner before this one started)."""
    with errors(f"reading the log of {container_id[:12]}"):
        return line.encode() in client().api.logs(container_id, stdout=True, stderr=False, tail=20)


def image(ref: str) -> dict | None:
    """The image's inspect data, or None when the engine does not have it."""
    try:
        with errors(f"inspecting image {ref}"):
            return client().api.inspect_image(ref)
    except RuntimeBackendError as exc:
        if isinstance(exc.__cause__, docker.errors.NotFound):
            return None
        raise


def files_of(image_ref: str, path: str) -> bytes:
    """The folder `path` of an image as a tar archive (owners and modes kept), read from a container
    created from it and never started."""
    with errors(f"reading {path} of {image_ref}"):
        reader = client().api.create_container(
            image_ref,
            command=["true"],
            labels={LABEL_INSTANCE: settings.INSTANCE, LABEL_POOL: ""},
            network_disabled=True,
        )["Id"]
        try:
            stream, _ = client().api.get_archive(reader, path)
            return b"".join(stream)
        finally:
            client().api.remove_container(reader, force=True)


def private_file(name: str, data: bytes, uid: int, gid: int) -> bytes:
    """A tar archive of one file that only uid can read."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid = len(data), 0o600, uid, gid
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def put(container_id: str, path: str, archive: bytes) -> None:
    with errors(f"copying files into {container_id[:12]}"):
        client().api.put_archive(container_id, path, archive)


def rename(container_id: str, name: str) -> None:
    with errors(f"renaming {container_id[:12]}"):
        client().api.rename(container_id, name)


def limit(container_id: str, memory_mb: int, cpus: float, pids: int) -> None:
    """Sets a running container's limits; docker-py's update_container knows neither NanoCpus nor
    PidsLimit, which the engine's update takes (API 1.40)."""
    api = client().api
    body = {
        "Memory": memory_mb * 1024 * 1024,
        "MemorySwap": memory_mb * 1024 * 1024,
        "NanoCpus": int(cpus * 1e9),
        "PidsLimit": pids,
    }
    with errors(f"setting the limits of {container_id[:12]}"):
        api._result(api._post_json(api._url("/containers/{0}/update", container_id), data=body), True)


def signal(container_id: str, name: str) -> None:
    with errors(f"signalling {container_id[:12]}"):
        client().api.kill(container_id, signal=name)


def remove(container_id: str) -> None:
    try:
        with errors(f"removing {container_id[:12]}"):
            client().api.remove_container(container_id, force=True)
    except RuntimeBackendError as exc:
        if not isinstance(exc.__cause__, docker.errors.NotFound):
            raise
