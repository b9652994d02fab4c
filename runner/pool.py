"""The warm interpreter pool: per pool image in use, a few idle containers that have imported
Gradio, one of which a space adopts instead of starting a container cold (docs/architecture.md,
"The warm pool").

- A space may adopt when its image is its pool image plus one layer (its files: no requirements,
  packages or other sdk; the builder labels it, `plan` checks it), runs `python <app_file>`, has
  no volumes and no GPUs, and listens on POOL_PORT.
- Adopting: a row in runner.models.Adoption claims the container and holds the labels the space's
  container would carry; the container is renamed as a space's, given the space's limits, its
  files and environment go in through the archive API, and SIGUSR1 tells the agent
  (runner/pool_agent.py) to run the app. It serves that space until it is removed, never again
  the pool.
- `refill` keeps WARM_POOL_SIZE ready containers per pool image a deployed space names, outside
  any visitor's request, and removes what no space needs and what was left half-made.
"""

import io
import json
import logging
import tarfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from django.conf import settings

from runner import docker_runtime
from runner.backend import RuntimeBackendError, Spec
from runner.models import Adoption
from runner.pool_agent import ADOPT, FOLDER, READY
from spacedock.labels import LABEL_POOL, LABEL_WARM
from spacedock.spaces.models import Deployment, Space

log = logging.getLogger(__name__)

# The Hub's default app_port, which the pool's containers publish: a space on another starts cold.
POOL_PORT = 7860
# A space whose files (its image's last layer) are bigger starts cold: its own image has them in
# place, while adopting would copy them (models kept with Git LFS, say) on the visitor's path.
MAX_FILES_MB = 256


@dataclass
class Plan:
    """How a space's image runs in a pool container: what the image's own start would do."""

    pool_image: str
    argv: list[str]
    workdir: str
    env: dict[str, str] = field(default_factory=dict)  # the image's own ENV


def enabled() -> bool:
    return settings.WARM_POOL and settings.RUNTIME_BACKEND == "local"


def named_pool_image(attrs: dict | None) -> str:
    """The pool image an image's label names ("" for none)."""
    return ((attrs or {}).get("Config", {}).get("Labels") or {}).get(LABEL_POOL) or ""


def image_env(attrs: dict) -> dict[str, str]:
    pairs = (item.partition("=") for item in attrs.get("Config", {}).get("Env") or [])
    return {key: value for key, _, value in pairs}


def plan(spec: Spec) -> Plan | None:
    """The plan for a space that may adopt a pool container, or None: it starts cold."""
    if not enabled() or spec.mounts or spec.gpus or spec.app_port != POOL_PORT:
        return None
    app = docker_runtime.inspect_image(spec.image)
    pool_image = named_pool_image(app)
    base = docker_runtime.inspect_image(pool_image) if pool_image else None
    if app is None or base is None:
        return None
    # The builder's word, checked: the pool image's layers and one more, the app's files.
    layers, base_layers = app["RootFS"]["Layers"], base["RootFS"]["Layers"]
    if len(layers) != len(base_layers) + 1 or layers[:-1] != base_layers:
        return None
    if app.get("Size", 0) - base.get("Size", 0) > MAX_FILES_MB * 2**20:
        return None
    config = app.get("Config", {})
    argv = config.get("Cmd") or []
    workdir = config.get("WorkingDir") or ""
    if config.get("Entrypoint") or len(argv) != 2 or argv[0] not in ("python", "python3") or not workdir:
        return None
    return Plan(pool_image=pool_image, argv=list(argv), workdir=workdir, env=image_env(app))


def private_file(name: str, data: bytes) -> bytes:
    """A tar archive of one file that only the spaces' user can read."""
    uid, _, gid = settings.RUN_USER.partition(":")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid = len(data), 0o600, int(uid), int(gid or uid)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


# -- idle containers --------------------------------------------------------------------------

_ready: set[str] = set()  # idle containers whose agent said READY, as this process saw
_waiting: set[str] = set()  # idle containers a thread of this process waits on


def is_idle(container) -> bool:
    return container.name.startswith(docker_runtime.pool_prefix())


def ready(container) -> bool:
    if container.id in _ready:
        return True
    if container.id in _waiting or container.status != "running":
        return False
    if docker_runtime.printed(container.id, READY):  # made by a runner before this one
        _ready.add(container.id)
        return True
    return False


def taken_of(containers: list) -> set[str]:
    """Those of `containers` that a space adopted."""
    rows = Adoption.objects.filter(container_id__in=[c.id for c in containers])
    return set(rows.values_list("container_id", flat=True))


def idle(pool_image: str) -> list:
    """Ready idle containers of one pool image, that nothing adopted."""
    found = [
        c
        for c in docker_runtime.pool_containers()
        if is_idle(c)
        and c.labels.get(LABEL_WARM) == pool_image
        and c.status == "running"
        and c.attrs.get("RestartCount", 0) == 0
    ]
    taken = taken_of(found)
    return [c for c in found if c.id not in taken and ready(c)]


# -- adopting ---------------------------------------------------------------------------------


def adopt(spec: Spec) -> str | None:
    """Gives the space a ready pool container, which runs its app from now on: its id, or None when
    the space cannot adopt or no container is ready (start it cold)."""
    the_plan = plan(spec)
    if the_plan is None:
        return None
    for container in idle(the_plan.pool_image):
        if not Adoption.claim(container.id, spec.space_id, docker_runtime.spec_labels(spec)):
            continue  # another runner took it first
        try:
            hand_over(container.id, spec, the_plan)
        except RuntimeBackendError as exc:
            log.warning("pool: %s could not adopt %s: %s", spec.name_hint, container.id[:12], exc)
            forget(container.id)
            return None
        finally:
            _ready.discard(container.id)
        return container.id
    return None


def hand_over(container_id: str, spec: Spec, the_plan: Plan) -> None:
    workdir = PurePosixPath(the_plan.workdir)
    # What a fresh container of the image would have: the image's ENV, then the runner's.
    env = {**the_plan.env, **spec.env, "PORT": str(spec.app_port)}
    payload = json.dumps({"env": env, "argv": the_plan.argv, "workdir": the_plan.workdir}).encode()
    steps = (
        lambda: docker_runtime.rename(container_id, docker_runtime.container_name(spec)),
        lambda: docker_runtime.set_limits(container_id, spec.memory_mb, spec.cpus, spec.pids),
        lambda: docker_runtime.copy_folder(spec.image, str(workdir), container_id, str(workdir.parent)),
        lambda: docker_runtime.put_files(
            container_id, FOLDER, private_file(PurePosixPath(ADOPT).name, payload)
        ),
    )
    # Four independent calls to the engine, made at once: the visitor waits for the slowest (the
    # copy, ~0.15 s), not for their sum (~0.4 s). The app starts only once all four are done.
    with ThreadPoolExecutor(len(steps), thread_name_prefix="adopt") as engine:
        for step in [engine.submit(step) for step in steps]:
            step.result()  # the first step's RuntimeBackendError, once every step is over
    docker_runtime.send_signal(container_id, "SIGUSR1")


def forget(container_id: str) -> None:
    """The container goes, and its row with it (the local backend's remove, for any container)."""
    docker_runtime.remove(container_id)
    Adoption.objects.filter(container_id=container_id).delete()


def adopted(space_id: int | None = None) -> list[tuple[object, Adoption]]:
    """Adopted containers (one space's, or all) with their rows, running or not."""
    if space_id is None:
        rows = {row.container_id: row for row in Adoption.objects.all()}
        found = docker_runtime.pool_containers() if rows else []
    else:
        rows = {row.container_id: row for row in Adoption.objects.filter(space_id=space_id)}
        found = [c for c in map(docker_runtime.get, rows) if c is not None]
    return [(c, rows[c.id]) for c in found if c.id in rows]


def space_of(container_id: str) -> int | None:
    """The space that adopted the container, if one did."""
    return Adoption.objects.filter(container_id=container_id).values_list("space_id", flat=True).first()


# -- refilling --------------------------------------------------------------------------------

_refilling = threading.Lock()
_pool_of: dict[str, str] = {}  # space image (by digest) -> its pool image or ""


def pool_image_of(ref: str) -> str:
    if ref in _pool_of:
        return _pool_of[ref]
    attrs = docker_runtime.inspect_image(ref)
    found = named_pool_image(attrs)
    if attrs is not None and "@sha256:" in ref:  # a digest names one image for good
        _pool_of[ref] = found
    return found


def wanted() -> set[str]:
    """Pool images that a space (or a pin or a preview) that may run needs."""
    spaces = Space.objects.filter(paused=False).exclude(deployed_build=None)
    refs = set(spaces.values_list("deployed_build__image", flat=True))
    refs |= set(Deployment.objects.exclude(build=None).values_list("build__image", flat=True))
    images = {pool_image_of(ref) for ref in refs if ref}
    return {image for image in images if image and docker_runtime.inspect_image(image) is not None}


def refill(wait: bool = False) -> None:
    """Makes the pool match what spaces need; never waits for a container to warm (a thread per new
    one does). The runner calls it in the background, after adoptions and every few passes; while
    another refill runs it does nothing, unless told to `wait` for it."""
    if not _refilling.acquire(blocking=wait):
        return
    try:
        _refill()
    finally:
        _refilling.release()


def _refill() -> None:
    size = settings.WARM_POOL_SIZE if enabled() else 0
    images = wanted() if size else set()
    containers = docker_runtime.pool_containers()
    rows = taken_of(containers)
    counts: dict[str, int] = {}
    for container in containers:
        if container.id in rows:
            continue  # a space's now: the runner retires it with the space
        image = container.labels.get(LABEL_WARM, "")
        broken = container.status not in ("running", "created") or container.attrs.get("RestartCount", 0)
        if not is_idle(container) or broken or image not in images or counts.get(image, 0) >= size:
            # Renamed without a row (its space is gone), crashed, or no longer needed.
            docker_runtime.remove(container.id)
            _ready.discard(container.id)
            continue
        counts[image] = counts.get(image, 0) + 1
    Adoption.objects.exclude(container_id__in=[c.id for c in containers]).delete()
    for image in images:
        for _ in range(size - counts.get(image, 0)):
            warm(image)


def warm(image: str) -> str:
    """Starts one pool container and a thread that marks it ready once its agent says so."""
    env = {"PORT": str(POOL_PORT), "GRADIO_SERVER_PORT": str(POOL_PORT), "SYSTEM": "spaces"}
    container_id = docker_runtime.run_pool(image, env, POOL_PORT)
    _waiting.add(container_id)
    threading.Thread(target=_wait, args=(container_id,), daemon=True, name=f"pool-{container_id[:8]}").start()
    return container_id


def _wait(container_id: str) -> None:
    try:
        if docker_runtime.wait_for_line(container_id, READY):
            _ready.add(container_id)
    except RuntimeBackendError as exc:
        log.warning("pool: %s", exc)
    finally:
        _waiting.discard(container_id)
