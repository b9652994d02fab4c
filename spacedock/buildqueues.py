"""Which Celery queue a space's build goes to, and which build queues have a worker.

Every build worker takes `builds`. A worker on a node with a label takes that label's queue too
(`--queues builds,builds.gpu`). A space whose placement names a node label
(`runner.Runtime.placement`, e.g. `node.labels.gpu==true`) builds on that label's queue while
some worker takes it, else on `builds`, so no build waits for a kind of node that has no builder;
a build already sent to a label's queue whose workers have all gone since is sent on to `builds`
by beat's reaper (`stranded`). Workers say which queues they take in Django's cache (shared
through Redis by every host), again every REFRESH_SECONDS, and each entry lapses SEEN_SECONDS
after its last renewal, so a worker that died stops drawing builds within that time; one that
stops cleanly withdraws at once. Two workers renewing one queue at the same instant may drop one
of them until its next renewal.
"""

import re
import time

from django.core.cache import cache
from django.core.exceptions import ObjectDoesNotExist

DEFAULT = "builds"
REFRESH_SECONDS = 30
SEEN_SECONDS = 90
_INDEX = "build-queues"
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")


def label_queues(constraints: list[str]) -> list[str]:
    """The build queues a space's placement constraints name, in their order: `node.labels.gpu==true`
    is `builds.gpu`, `node.labels.zone==eu` is `builds.zone.eu`; other constraints name none."""
    queues = []
    for constraint in constraints:
        key, equals, value = (part.strip() for part in constraint.partition("=="))
        label = key.removeprefix("node.labels.")
        if not equals or label == key or not (_PART.fullmatch(label) and _PART.fullmatch(value)):
            continue
        queues.append(f"{DEFAULT}.{label}" if value == "true" else f"{DEFAULT}.{label}.{value}")
    return queues


def choose(constraints: list[str], live: set[str]) -> str:
    """The first queue the constraints name that has a worker, else the default."""
    return next((queue for queue in label_queues(constraints) if queue in live), DEFAULT)


def queue_for(space) -> str:
    """Where the space's next build goes."""
    try:
        placement = space.runtime.placement  # runner.Runtime, read through its relation
    except ObjectDoesNotExist:
        return DEFAULT
    constraints = [c for c in placement.split(",") if c.strip()]
    wanted = label_queues(constraints)
    if not wanted:  # most spaces: no cache read
        return DEFAULT
    return choose(constraints, {queue for queue, names in workers(wanted).items() if names})


def _sent_key(build_id: int) -> str:
    return f"build-sent-to:{build_id}"


def sent(build_id: int, queue: str) -> None:
    """Remembers a build sent to a label's queue, in case that queue's workers all go."""
    if queue != DEFAULT:
        cache.set(_sent_key(build_id), queue, 7 * 24 * 3600)


def stranded(build_ids: list[int]) -> list[int]:
    """Of these queued builds, those sent to a label's queue that no live worker takes any more."""
    found = cache.get_many([_sent_key(build_id) for build_id in build_ids])
    queues = {build_id: found[_sent_key(build_id)] for build_id in build_ids if _sent_key(build_id) in found}
    live = {queue for queue, names in workers(sorted(set(queues.values()))).items() if names}
    return [build_id for build_id, queue in queues.items() if queue not in live]


def forget(build_id: int) -> None:
    cache.delete(_sent_key(build_id))


def _key(queue: str) -> str:
    return f"build-queue:{queue}"


def register(worker: str, queues: list[str], seconds: float = SEEN_SECONDS) -> None:
    """Says that `worker` takes `queues`, for the next `seconds`."""
    now = time.time()
    for queue in queues:
        seen = {name: until for name, until in (cache.get(_key(queue)) or {}).items() if until > now}
        seen[worker] = now + seconds
        cache.set(_key(queue), seen, None)
    cache.set(_INDEX, sorted(set(cache.get(_INDEX) or ()) | set(queues)), None)


def withdraw(worker: str, queues: list[str]) -> None:
    for queue in queues:
        seen = cache.get(_key(queue)) or {}
        seen.pop(worker, None)
        cache.set(_key(queue), seen, None)


def workers(queues: list[str] | None = None) -> dict[str, list[str]]:
    """The live workers of each queue; of every queue a worker ever took when none are named."""
    queues = list(cache.get(_INDEX) or ()) if queues is None else queues
    now = time.time()
    found = cache.get_many([_key(queue) for queue in queues])
    return {
        queue: sorted(name for name, until in found.get(_key(queue), {}).items() if until > now)
        for queue in queues
    }


def report() -> str:
    """What `./manage.py cluster` says about builders."""
    lines = ["build queues:"]
    for queue, names in sorted(workers().items()):
        idle = "no worker: builds wait" if queue == DEFAULT else f"no worker: its builds go to {DEFAULT}"
        lines.append(f"  {queue:30} {', '.join(names) or idle}")
    return "\n".join(lines) if len(lines) > 1 else "build queues: no build worker has started"
