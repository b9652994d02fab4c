"""Makes Docker and Caddy match the database, one space at a time, as often as asked.

The database says what should run (`deployed_build`, `generation`, `paused`, `sleep_time`); the
runner starts, health-checks, routes, retires and records. Every step can be interrupted (the
runner killed, Caddy or Docker restarted): the next pass looks at what exists and goes on.
Order that keeps requests whole: a new container is routed only once it answers, its stage says
RUNNING only once it is routed, and an old one is stopped only after its route is gone and its
in-flight requests have finished. Stages move only through spacedock/spaces/stages.py; a container
runs with its build's own config (app_port, startup timeout, sdk), not the latest push's.

A space asleep (SLEEPING) sleeps in one of two tiers (Runtime.sleep_tier): frozen, its container
unrouted and paused where the backend can (a visit unpauses it: no new container), or deep, its
container removed. Frozen spaces share SPACEDOCK_FROZEN_MEMORY_MB; past it, and after
SPACEDOCK_DEEP_SLEEP_SECONDS frozen, they go deep (Runtime.too_cold).
"""

import json
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import requests
from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Q
from django.utils import timezone

from runner import caddy, deployments, firewall, logstream
from runner.backend import Backend, Instance, RuntimeBackendError, Spec, backend
from runner.models import RUNNER_ID, Runtime, SleepTier
from spacedock.buckets.models import full_buckets, volume_mounts
from spacedock.hardware.models import SpaceHardware, place, release
from spacedock.labels import LABEL_DEPLOYMENT, LABEL_SPACE, LABEL_TARGET
from spacedock.proxy import hosts
from spacedock.spaces import stages
from spacedock.spaces.config import SpaceConfig
from spacedock.spaces.models import Deployment, RunLogLine, Space

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 30
# A thawed container that does not answer within this long is removed and started afresh.
THAW_SECONDS = 10
# A starting app is looked at when it prints or its container changes (Runner.stir). One that
# prints nothing is looked at after a gap that grows from the first to the longest; and however
# much an app prints, it is not asked more often than every shortest gap.
FIRST_LOOK_GAP = 0.05
LONGEST_LOOK_GAP = 0.5
SHORTEST_LOOK_GAP = 0.02


@dataclass
class Starting:
    """A new container the runner started and waits on, pass after pass, without holding a thread."""

    container: Instance
    target: str
    config: SpaceConfig
    image: str
    live: Instance | None  # the version serving meanwhile, retired once the new one is routed
    timeout: int
    deadline: float
    flavour: str = ""  # the hardware flavour it was started on (hardware.current once it serves)
    notes: str = ""  # the stage message once it serves (a full bucket mounted read-only)
    full: set[int] = field(default_factory=set)  # buckets mounted read-only because they are full
    # Set by the app's output and its container's events (Runner.stir): the moment to look again.
    stirred: threading.Event = field(default_factory=threading.Event)
    gap: float = 0.0  # the wait before looking again at an app that has said nothing (0: the first)


def target_of(space: Space) -> str:
    build = space.deployed_build
    if build is None or not build.image:
        return ""
    return f"{build.image}@{space.generation}"


def run_config(space: Space) -> SpaceConfig:
    """The deployed build's own config: a rollback runs on the port that build listens on."""
    return space.deployed_build.space_config()


def answers_http(dial: str) -> bool:
    try:
        requests.get(f"http://{dial}/", timeout=2, allow_redirects=False)
        return True
    except requests.RequestException:
        return False


def _headers(build) -> dict[str, str]:
    """The build's response headers (custom_headers, disable_embedding's frame rule); read from the
    config its push recorded, never from git, since every pass computes the routes."""
    return build.response_headers() if build is not None and build.config else {}


def frozen_of(found: dict, target: str) -> Instance | None:
    """The space's frozen (paused) container of `target`, if it has one."""
    return next(
        (c for c in found.values() if c.status == "paused" and c.labels.get(LABEL_TARGET) == target), None
    )


def fair_order(rows: list[tuple[int, int]]) -> list[int]:
    """Space ids, one owner's at a time in turn (each owner's oldest first): the pool takes work in
    this order, so an owner with a hundred spaces delays another owner's one by one slot, not 100."""
    by_owner: dict[int, list[int]] = {}
    for space_id, owner_id in rows:
        by_owner.setdefault(owner_id, []).append(space_id)
    queues = list(by_owner.values())
    order = []
    for turn in range(max((len(q) for q in queues), default=0)):
        order.extend(q[turn] for q in queues if turn < len(q))
    return order


class Runner:
    def __init__(
        self, admin: caddy.Admin | None = None, runner_id: str = RUNNER_ID, runtime: Backend | None = None
    ):
        self.admin = admin or caddy.Admin()
        self.backend = runtime or backend()
        self.runner_id = runner_id
        self.busy: dict[int, Future] = {}
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="space")
        self.followers: dict[str, threading.Thread] = {}
        # Spaces whose new container is starting: each pass looks once (Runner.progress), so eight
        # slow apps never hold the pool's threads while a ninth space waits to deploy or wake.
        self.starting: dict[int, Starting] = {}
        # The same for pins' and previews' containers, by Deployment id (runner/deployments.py).
        self.deployments_starting: dict[int, Starting] = {}
        self.proxy_lock = threading.Lock()
        self.access_offset: int | None = None
        self.firewall_checked = 0.0
        self.firewall_problem = ""  # while not "", no space starts (firewall.check)
        self.buckets_checked = 0.0
        # Per serving space, the buckets its container mounts read-only because they were full; the
        # bucket watch restarts it when that set is no longer the right one (Runner.watch_buckets).
        self.full_mounts: dict[int, set[int]] = {}
        self.stopping = threading.Event()
        # A pass starts when this is set (a nudge, a Docker event, a starting app's output) or when
        # the command's timer runs out.
        self.wake = threading.Event()
        self.warming: Future | None = None  # the warm pool's refill (backend.warm), in the background
        # Frozen spaces that go to deep sleep on this pass (Runtime.too_cold, read once per pass).
        self.cold: set[int] = set()

    # -- the loop's one pass ------------------------------------------------------------------

    def tick(self, wait: bool = False) -> None:
        """One pass over every space; `wait` blocks until each space's work is done (tests)."""
        if time.monotonic() - self.firewall_checked > 30:
            self.firewall_problem = self.backend.prepare()
            self.firewall_checked = time.monotonic()
        self.count_requests()
        if time.monotonic() - self.buckets_checked > settings.BUCKET_CHECK_SECONDS:
            self.buckets_checked = time.monotonic()
            self.watch_buckets()
        self.sync_proxy()
        self.remove_orphans()
        if self.warming is None or self.warming.done():  # never on a visitor's path
            self.warming = self.pool.submit(self._warm)
        deep_after = timedelta(seconds=settings.DEEP_SLEEP_SECONDS)
        self.cold = Runtime.too_cold(settings.FROZEN_MEMORY_MB * 2**20, deep_after)
        wanted = self.candidates()
        for gone in set(list(self.starting)) - set(wanted):
            self.starting.pop(gone, None)  # deleted while starting: nothing left to wait on
        for space_id in wanted:
            if space_id in self.busy and not self.busy[space_id].done():
                Runtime.claim(space_id, self.runner_id)  # renew the lease while a deploy waits
                continue
            if Runtime.claim(space_id, self.runner_id):
                self.busy[space_id] = self.pool.submit(self._guarded, space_id)
        if wait:
            for future in list(self.busy.values()):
                future.result()

    def converge(self, passes: int = 3) -> None:
        """Passes until nothing is left to do: `passes` in a row with no app starting (a deploy
        ends in one once its app answers, a retire the next)."""
        quiet = 0
        while quiet < passes and not self.stopping.is_set():
            self.tick(wait=True)
            busy = self.starting or self.deployments_starting
            quiet = 0 if busy else quiet + 1
            if busy:
                time.sleep(0.2)

    def candidates(self) -> list[int]:
        """Spaces that should run or have something running."""
        with_containers = {int(c.labels[LABEL_SPACE]) for c in self.backend.instances()}
        with_deployments = Deployment.objects.exclude(build=None).values("space_id")
        wanted = (
            Q(deployed_build__isnull=False)
            | ~Q(container_id="")
            | Q(pk__in=with_containers)
            | Q(pk__in=with_deployments)
        )
        rows = Space.objects.filter(wanted).order_by("pk").values_list("pk", "owner_id")
        return fair_order(list(rows))

    def _warm(self) -> None:
        try:
            self.backend.warm()
        except RuntimeBackendError as exc:
            log.warning("warm pool: %s", exc)
        except Exception:
            log.exception("warm pool: refill failed")
        finally:
            close_old_connections()
            if connection.vendor != "sqlite":
                connection.close()

    def _guarded(self, space_id: int) -> None:
        try:
            self.reconcile_space(space_id)
            # Its pins and previews, under the same claim, whatever the space itself does.
            if Space.objects.filter(pk=space_id).exists():
                deployments.reconcile_deployments(self, space_id, self.backend.instances(space_id))
        except RuntimeBackendError as exc:
            log.warning("space %s: %s", space_id, exc)
        except caddy.CaddyError as exc:
            log.warning("space %s: %s", space_id, exc)
        except Exception:
            log.exception("space %s: reconcile failed", space_id)
        finally:
            close_old_connections()
            if connection.vendor != "sqlite":
                connection.close()

    def shutdown(self) -> None:
        self.stopping.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
        Runtime.release_all(self.runner_id)

    # -- one space ------------------------------------------------------------------------------

    def reconcile_space(self, space_id: int) -> None:
        space = Space.objects.select_related("deployed_build", "owner").filter(pk=space_id).first()
        if space is None:
            for instance in self.backend.instances(space_id):
                self.backend.remove(instance.id)
            return
        runtime, _ = Runtime.objects.get_or_create(space=space)
        target = target_of(space)
        # The space's own containers: its pins' and previews' carry LABEL_DEPLOYMENT (deployments.py).
        found = {c.id: c for c in self.backend.instances(space_id) if LABEL_DEPLOYMENT not in c.labels}
        current = found.get(space.container_id)
        if current is not None and current.status == "running":
            self.follow_log(space, current)
            if self.asleep(space, current):
                space.refresh_from_db()
        if runtime.sleep_tier and space.stage != stages.Stage.SLEEPING:
            # Woken, pushed to while asleep, paused or stopped: no longer counted in the frozen
            # tier's budget, whatever of its container is left to thaw or to remove.
            Runtime.objects.filter(pk=space.pk).update(sleep_tier="", frozen_at=None, frozen_bytes=0)
            runtime.sleep_tier = ""

        # Going down, the stage moves before the route goes; coming up, after the route exists:
        # a space that says RUNNING answers at its URL.
        keep_down = not target or space.paused or space.stage == stages.Stage.SLEEPING
        start = self.starting.get(space_id)
        if start is not None:
            if start.target == target and not keep_down:
                self.progress(space, runtime, start)
                return
            # Superseded (a new push, a restart, a pause): this one never served; start afresh.
            self.starting.pop(space_id, None)
            if found.pop(start.container.id, None) is not None:
                self.backend.remove(start.container.id)
        if keep_down:
            if space.paused:
                stages.pause(space)
            elif not target:
                stages.stop(space)  # its build is gone: nothing to run, nothing to wake
            # A frozen container was released when it froze: no need to release it each pass.
            had_one = bool(space.container_id) or any(c.status != "paused" for c in found.values())
            frozen = None
            if space.stage == stages.Stage.SLEEPING:
                found, frozen = self.doze(space, runtime, target, found)
            self.retire_all(space, found)
            if had_one:
                release(space)  # its GPUs go back; hardware.current is empty while nothing runs
            if frozen is None:
                self.full_mounts.pop(space.pk, None)
            return
        if space.container_id and current is None:
            stages.app_lost(space)  # the container is gone (removed by hand, or the engine lost it)
            self.unroute(space)

        serving = current is not None and current.status == "running"
        if current is not None and current.status == "restarting":
            return  # Docker restarts a crashed app with backoff; the retries it has left are its own
        if current is not None and not serving:
            if self.crashed_for_good(current):
                self.fail(space, runtime, target, current, "The app crashed again and again after starting.")
                return
            # Stopped from outside (the engine restarted, someone ran docker stop): start afresh.
            stages.app_lost(space)
            self.unroute(space)
            self.backend.remove(current.id)
            current = None

        if runtime.failed_target == target or (space.stage == stages.Stage.BUILDING and not serving):
            for cid in found:
                if current is None or cid != current.id:
                    self.backend.remove(cid)
            return

        if serving and current.labels.get(LABEL_TARGET) == target and not current.moving:
            self.keep(space, runtime, current, found)
            return
        if not serving and self.thaw(space, target, found):
            return
        self.deploy(space, runtime, target, live=current if serving else None, stale=found)

    def keep(self, space: Space, runtime: Runtime, current: Instance, found: dict) -> None:
        port = current.port()  # the one port it was started with
        address = "" if current.address == "127.0.0.1" else current.address
        if port and (port != space.port or address != runtime.address):
            # The engine restarted it on another port, or Swarm moved it to another node. A moved
            # one gets the route once it answers: until then the old task may still serve (a
            # drained node's tasks keep serving through their stop grace period).
            if address != runtime.address and not answers_http(current.dial()):
                return
            # Locally a restarted container may come back at another address: not a move.
            if address != runtime.address and self.backend.name != "local":
                where = current.node or current.address
                space.log_run(f"===== Moved to {where}: the orchestrator placed it again =====")
            Runtime.objects.filter(pk=space.pk).update(address=address)
            Space.objects.filter(pk=space.pk).update(port=port)
            self.sync_proxy()
        if space.stage in stages.TRANSITIONS["app_running"]:
            self.sync_proxy()  # routed before it says RUNNING (a pass may have stopped before routing)
            stages.app_running(space)
        for cid in found:
            if cid != current.id:
                self.backend.remove(cid)

    def deploy(self, space: Space, runtime: Runtime, target: str, live, stale: dict) -> None:
        if self.firewall_problem:  # a space started now could reach the host: say so, start nothing
            firewall.refuse(space, live is not None)
            return
        for cid in stale:  # half-started attempts of an earlier pass or an earlier runner
            if live is None or cid != live.id:
                self.backend.remove(cid)
        # The flavour, its GPUs (the same ones again for a space that holds them) and its limits.
        placement = place(space)
        if placement.queued:
            # No GPU free (or none on this host): start nothing, record no failure, and look again
            # next pass. A previous version that still serves keeps serving meanwhile.
            stages.hardware_queued(space, placement.message)
            return
        try:
            volumes = volume_mounts(space)
        except ValueError as exc:  # a mounted space's revision is gone, a bucket turned private, ...
            self.fail(space, runtime, target, None, f"Its volumes cannot be mounted: {exc}", live=live)
            return
        if live is not None and placement.resources.gpu_ids:
            # Two copies of a model in one GPU's memory may not fit: the old one goes first (the
            # stage before the route, as for any space going down).
            stages.app_starting(space)
            self.unroute(space)
            self.retire(live, space)
            live = None
        elif live is None:
            stages.app_starting(space)
        else:
            stages.app_replacing(space)
        if live is not None and live.moving:
            space.log_run(
                f"===== Its node {live.node} is going away (drained or down): starting it elsewhere ====="
            )
        image = space.deployed_build.image
        config = run_config(space)
        resources = placement.resources
        space.log_run(
            f"===== Starting {image} ({config.sdk} sdk, port {config.app_port}, "
            f"generation {space.generation}, {placement.flavour.name}) ====="
        )
        for note in volumes.notes:
            space.log_run(f"===== {note} =====")
        spec = Spec(
            space_id=space.pk,
            name_hint=space.subdomain[:40],
            image=image,
            target=target,
            generation=space.generation,
            env={**space.env(), **volumes.env, **resources.env},
            app_port=config.app_port,
            memory_mb=resources.memory_mb,
            cpus=resources.cpus,
            pids=space.pids_limit or settings.RUN_PIDS,
            constraints=runtime.constraints,
            mounts=volumes.mounts,
            gpus=resources.gpu_ids,
        )
        try:
            container = self.backend.run(spec)
        except RuntimeBackendError as exc:
            self.fail(space, runtime, target, None, f"The container could not start: {exc}", live=live)
            return
        if container.warm:
            space.log_run("===== In a warm pool container: Python and Gradio already imported =====")
        self.follow_log(space, container)
        # Capped again here: a build recorded before the operator lowered the cap keeps its config.
        timeout = min(
            config.startup_duration_timeout or settings.STARTUP_TIMEOUT, settings.MAX_STARTUP_SECONDS
        )
        start = Starting(
            container, target, config, image, live, timeout, time.monotonic() + timeout,
            flavour=placement.flavour.name, notes="\n".join(volumes.notes), full=volumes.full,
        )  # fmt: skip
        self.starting[space.pk] = start
        self.progress(space, runtime, start)

    def progress(self, space: Space, runtime: Runtime, start: Starting) -> None:
        """Looks at a starting app for a moment; routes it once it answers, fails it past its time."""
        problem = self.check_start(start)
        if problem is None:
            return  # still starting: the next pass looks again
        self.starting.pop(space.pk, None)
        if problem:
            self.fail(space, runtime, start.target, start.container, problem, live=start.live)
            return
        self.go_live(space, start)

    def go_live(self, space: Space, start: Starting) -> None:
        config, image, live = start.config, start.image, start.live
        container = self.backend.get(start.container.id) or start.container
        port = container.port(config.app_port)
        address = "" if container.address == "127.0.0.1" else container.address
        Space.objects.filter(pk=space.pk).update(container_id=container.id, port=port, running_image=image)
        Runtime.objects.filter(pk=space.pk).update(failed_target="", address=address)
        SpaceHardware.mark_running(space, start.flavour)
        self.full_mounts[space.pk] = start.full
        self.sync_proxy()  # first the route, then the stage: whoever sees RUNNING reaches the app
        stages.app_running(space, start.notes)
        space.log_run(f"===== Running at {space.url} =====")
        if live is not None:
            self.retire(live, space)

    def check_start(self, start: Starting, look: float = 1.0) -> str | None:
        """'' once the app answers HTTP, None while it may still, else why not. Looks for at most
        `look` seconds: a pass must never wait minutes on one app. Between looks it waits for the
        app to print (Gradio says "Running on" once it serves) or its container to change, not on
        a fixed timer; an app that prints nothing is looked at after a growing gap."""
        config = start.config
        until = time.monotonic() + look
        while not self.stopping.is_set():
            start.stirred.clear()  # output from here on is news: it wakes the wait below
            looked = time.monotonic()
            container = self.backend.get(start.container.id)
            if container is None:
                return "The app's container vanished while starting."
            if container.unschedulable:
                return f"No node can run it: {container.unschedulable}"
            # Restarted since it was started (or, for a thawed one, since it froze): it crashed.
            if (
                container.status in ("exited", "dead")
                or container.restart_count > start.container.restart_count
            ):
                return f"The app exited with code {self.backend.exit_code(container)} while starting."
            dial = container.dial(config.app_port)
            if dial and container.status == "running" and answers_http(dial):
                return ""
            if time.monotonic() > start.deadline:
                return (
                    f"The app did not answer HTTP on port {config.app_port} within {start.timeout} s "
                    "(startup_duration_timeout). Does it listen on 0.0.0.0 and that port?"
                )
            left = until - time.monotonic()
            if left <= 0:
                return None
            gap = start.gap or FIRST_LOOK_GAP
            if start.stirred.wait(min(gap, left)):
                # A chatty app (a progress bar while it loads a model) is not asked on every line.
                self.stopping.wait(max(looked + SHORTEST_LOOK_GAP - time.monotonic(), 0))
                continue
            start.gap = min(gap * 2, LONGEST_LOOK_GAP)
            if gap >= left:
                return None  # this look is over; the next pass's begins by looking
        return None

    def stir(self, container_id: str) -> None:
        """The container printed or changed: if it is starting, look at it now (Runner.check_start),
        and start a pass if none is looking. Called from the log followers and the event watch."""
        for start in [*self.starting.values(), *self.deployments_starting.values()]:
            if start.container.id == container_id and not start.stirred.is_set():
                start.stirred.set()
                self.wake.set()

    def fail(self, space: Space, runtime: Runtime, target: str, container, reason: str, live=None) -> None:
        start = self.starting.get(space.pk)
        if start is not None and container is not None and start.container.id == container.id:
            self.starting.pop(space.pk, None)  # failed from outside a pass (out of memory): done waiting
        tail = self.backend.tail(container.id, LOG_TAIL_LINES) if container is not None else ""
        message = f"{reason}\n\nLast lines of the log:\n{tail}" if tail else reason
        # The tail is the app's own output: an app that prints its environment before crashing
        # must not publish its secrets on the space's page and in the runtime API.
        message = RunLogLine.redact(space, message)
        space.log_run(f"===== {reason} =====")
        Runtime.objects.filter(pk=space.pk).update(failed_target=target)
        if live is not None:
            # The old version keeps serving; the page says why the new one did not replace it.
            stages.replacement_failed(space, message)
        else:
            stages.app_failed(space, message)
            release(space)  # nothing runs until a restart, which places it again
        if container is not None and (live is None or container.id != live.id):
            if container.id == space.container_id:
                self.unroute(space)
            self.backend.remove(container.id)

    def out_of_memory(self, space_id: int, container_id: str) -> None:
        """An app past its memory limit stops for good: restarting it would only do it again."""
        space = Space.objects.select_related("deployed_build").filter(pk=space_id).first()
        if space is None:
            return
        runtime, _ = Runtime.objects.get_or_create(space=space)
        limit = space.run_memory_mb()
        try:
            container = self.backend.get(container_id)
        except RuntimeBackendError:
            container = None
        if container is not None and (dep_id := deployments.deployment_of(container)) is not None:
            deployment = Deployment.objects.filter(pk=dep_id).select_related("space").first()
            if deployment is not None:
                deployments.fail(self, deployment, container, f"Memory limit exceeded ({limit} MB).", None)
            return
        reason = (
            f"Memory limit exceeded: the app used more than its {limit} MB and was stopped (out of memory). "
            "Make it use less memory, or ask the operator for a higher limit; then restart it."
        )
        self.fail(space, runtime, target_of(space), container, reason)

    def crashed_for_good(self, container: Instance) -> bool:
        return (
            container.status in ("exited", "dead")
            and container.exit_code not in (0, 137, 143)
            and container.restart_count >= settings.RUN_RESTART_RETRIES
        )

    def asleep(self, space: Space, current: Instance) -> bool:
        """Puts an idle space to sleep: its stage says so, and the same pass freezes or stops it."""
        if space.sleep_time < 0 or space.stage != stages.Stage.RUNNING:
            return False
        seen = [t for t in (space.last_request_at, current.started_at) if t]
        if not seen or timezone.now() - max(seen) < timedelta(seconds=space.sleep_time):
            return False
        return stages.sleep(space)

    # -- the two sleep tiers ----------------------------------------------------------------------

    def freezable(self, space: Space) -> bool:
        """Frozen rather than removed when it sleeps: where the backend can freeze, while the frozen
        tier has a budget, and not on a GPU flavour (a paused app would keep its GPU from the
        spaces queued for one)."""
        return (
            self.backend.can_freeze
            and settings.FROZEN_MEMORY_MB > 0
            and not SpaceHardware.of(space).flavour().is_gpu
        )

    def doze(self, space: Space, runtime: Runtime, target: str, found: dict) -> tuple[dict, Instance | None]:
        """A SLEEPING space's tier: its serving container frozen (the route gone first, its
        in-flight requests finished, then paused), or none kept (deep: too cold, or not freezable).
        Returns the containers to retire and the frozen one."""
        frozen = frozen_of(found, target)
        serving = found.get(space.container_id)
        if (
            frozen is None
            and serving is not None
            and serving.status == "running"
            and serving.labels.get(LABEL_TARGET) == target
            and self.freezable(space)
        ):
            self.unroute(space)  # the route goes first: a visit reaches the wake page
            self.drain(serving)
            try:
                self.backend.freeze(serving.id)
                frozen = serving
            except RuntimeBackendError as exc:
                log.warning("space %s: could not freeze, stopping it instead: %s", space.pk, exc)
        if frozen is not None and space.pk in self.cold:
            frozen = None  # over the frozen tier's budget, or frozen too long: deep sleep
        tier = SleepTier.FROZEN if frozen is not None else SleepTier.DEEP
        if runtime.sleep_tier != tier:
            held = self.backend.memory(frozen.id) if frozen is not None else 0
            Runtime.objects.filter(pk=space.pk).update(
                sleep_tier=tier, frozen_at=timezone.now() if frozen else None, frozen_bytes=held
            )
            space.log_run(
                f"===== Asleep, frozen ({held // 2**20} MB kept): a visit wakes it at once ====="
                if frozen
                else "===== Asleep, stopped (deep sleep): a visit starts it again ====="
            )
        rest = {cid: c for cid, c in found.items() if frozen is None or cid != frozen.id}
        return rest, frozen

    def thaw(self, space: Space, target: str, found: dict) -> bool:
        """Wakes a frozen container of the current target: unpaused, answering, routed, then RUNNING,
        with no new container. False when there is none (deploy starts one and removes a frozen
        one whose target is stale) or it does not answer (removed: deploy starts afresh)."""
        frozen = frozen_of(found, target)
        if frozen is None or self.firewall_problem:
            return False
        found.pop(frozen.id)
        flavour = SpaceHardware.of(space).flavour().name
        start = Starting(
            frozen, target, run_config(space), space.deployed_build.image, None, THAW_SECONDS,
            time.monotonic() + THAW_SECONDS, flavour=flavour, full=self.full_mounts.get(space.pk, set()),
        )  # fmt: skip
        try:
            self.backend.thaw(frozen.id)
            problem = self.check_start(start, look=THAW_SECONDS)
        except RuntimeBackendError as exc:
            problem = str(exc)
        if problem != "":
            space.log_run(f"===== It did not wake from frozen ({problem}): starting it again =====")
            self.backend.remove(frozen.id)
            return False
        space.log_run("===== Woken from frozen =====")
        self.go_live(space, start)
        return True

    # -- retiring -------------------------------------------------------------------------------

    def unroute(self, space: Space) -> None:
        Space.objects.filter(pk=space.pk).update(container_id="", port=None, running_image="")
        Runtime.objects.filter(pk=space.pk).update(address="")
        space.container_id, space.port = "", None
        self.sync_proxy()

    def drain(self, old: Instance) -> None:
        """Its route is gone: waits (up to SPACEDOCK_DRAIN_TIMEOUT) for its in-flight requests."""
        dial = old.dial()  # its own build's port, which may not be the deployed one's
        deadline = time.monotonic() + settings.DRAIN_TIMEOUT
        if dial:
            while time.monotonic() < deadline and self.admin.requests_in_flight(dial) > 0:
                time.sleep(0.1)

    def retire(self, old: Instance, space: Space) -> None:
        """The old container's route is gone; let its in-flight requests finish, then stop it."""
        self.drain(old)
        self.backend.stop(old.id)
        self.backend.remove(old.id)

    def retire_all(self, space: Space, found: dict) -> None:
        if space.container_id:
            self.unroute(space)
        for container in found.values():
            if container.status == "running":
                self.retire(container, space)
            else:
                self.backend.remove(container.id)

    def watch_buckets(self) -> None:
        """A bucket a running app writes through its mount is not capped by the kernel: every
        SPACEDOCK_BUCKET_CHECK_SECONDS the runner compares each serving space's writable buckets
        with their quotas, and restarts a space whose container mounts them otherwise than it
        should (read-only once full, read-write again once files were deleted). The restart's
        stage message says which bucket is full and what to do (spacedock.buckets.volume_mounts)."""
        serving = Space.objects.exclude(container_id="").filter(
            volumes__type="bucket", volumes__read_only=False, paused=False
        )
        for space in serving.distinct().select_related("owner"):
            mounted = self.full_mounts.get(space.pk)
            try:
                full = full_buckets(space)
            except OSError as exc:  # a bucket folder it cannot read: the other spaces still count
                log.warning("space %s: cannot add up its buckets: %s", space.pk, exc)
                continue
            if mounted is None and not full:
                continue  # started by an earlier runner: only a full bucket is worth a restart
            if full != (mounted or set()):
                space.log_run(
                    "===== A bucket it writes to is over its quota: restarting with it read-only ====="
                    if full - (mounted or set())
                    else "===== Its bucket is back under its quota: restarting with it writable ====="
                )
                self.full_mounts[space.pk] = full
                space.request_restart()

    def remove_orphans(self) -> None:
        """Containers of this instance whose space is gone."""
        existing = set(Space.objects.values_list("pk", flat=True))
        for container in self.backend.instances():
            if int(container.labels[LABEL_SPACE]) not in existing:
                self.backend.remove(container.id)

    # -- Caddy, logs, visits --------------------------------------------------------------------

    def sync_proxy(self) -> bool:
        with self.proxy_lock:
            spaces = (
                Space.objects.filter(port__isnull=False)
                .exclude(container_id="")
                .select_related("runtime", "deployed_build")
                .order_by("subdomain")
            )
            routes = [
                caddy.space_route(s.host, s.port, s.is_private, s.app_address, _headers(s.deployed_build))
                for s in spaces
            ]
            serving = (
                Deployment.objects.filter(port__isnull=False)
                .exclude(container_id="")
                .select_related("space", "build")
                .order_by("label")
            )
            routes += [
                caddy.space_route(
                    d.host, d.port, d.space.is_private, d.address or "127.0.0.1", _headers(d.build)
                )
                for d in serving
            ]
            return self.admin.ensure(caddy.config(routes))

    def follow_log(self, space: Space, container: Instance) -> None:
        thread = self.followers.get(container.id)
        if thread is not None and thread.is_alive():
            return
        last = (
            RunLogLine.objects.filter(space=space).order_by("-number").values_list("time", flat=True).first()
        )
        started = container.started_at
        since = max(t for t in (last, started) if t) if (last or started) else None
        thread = threading.Thread(
            target=self._follow,
            args=(space.pk, container.id, since),
            daemon=True,
            name=f"log-{container.id[:8]}",
        )
        self.followers[container.id] = thread
        thread.start()

    def _follow(self, space_id: int, container_id: str, since: datetime | None) -> None:
        try:
            space = Space.objects.get(pk=space_id)
            stamp = int(since.timestamp()) if since else None
            for line in logstream.sampled(self.backend.follow(container_id, since=stamp)):
                RunLogLine.append(space, line)
                self.stir(container_id)
        except (RuntimeBackendError, Space.DoesNotExist):
            pass
        finally:
            self.followers.pop(container_id, None)
            connection.close()

    def count_requests(self) -> None:
        """Reads Caddy's access log since last time: every request moves the space's last request
        time (sleep); only a visitor's first request in an hour counts as a visit (trending)."""
        path = settings.CADDY_ACCESS_LOG
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        if self.access_offset is None or size < self.access_offset:
            self.access_offset = size if self.access_offset is None else 0
        if size == self.access_offset:
            return
        latest: dict[str, float] = {}
        deployment_latest: dict[str, float] = {}
        visitors: dict[str, set[str]] = {}
        with open(path, "rb") as f:
            f.seek(self.access_offset)
            data = f.read(size - self.access_offset)
        complete, _, _ = data.rpartition(b"\n")
        self.access_offset += len(complete) + (1 if complete else 0)
        for raw in complete.splitlines():
            try:
                entry = json.loads(raw)
                request = entry["request"]
                name = hosts.parse(request["host"])
                visitor = str(request.get("client_ip") or request.get("remote_ip") or "")
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            if name is not None and name.subdomain:
                sub = name.subdomain
                latest[sub] = max(latest.get(sub, 0.0), float(entry.get("ts", time.time())))
                visitors.setdefault(sub, set()).add(visitor)
            elif name is not None:  # a pin's or a preview's: its own idle time, not its space's visits
                label = name.preview or f"pin--{name.build_id}"
                deployment_latest[label] = max(
                    deployment_latest.get(label, 0.0), float(entry.get("ts", time.time()))
                )
        for space in Space.objects.filter(subdomain__in=list(latest)).only("pk", "subdomain", "created"):
            when = datetime.fromtimestamp(latest[space.subdomain], tz=UTC)
            first = sum(1 for visitor in visitors[space.subdomain] if space.first_visit(visitor))
            if first:
                space.count_visits(first)
            Space.objects.filter(
                Q(last_request_at__lt=when) | Q(last_request_at__isnull=True), pk=space.pk
            ).update(last_request_at=when)
        for label, ts in deployment_latest.items():
            when = datetime.fromtimestamp(ts, tz=UTC)
            Deployment.objects.filter(
                Q(last_request_at__lt=when) | Q(last_request_at__isnull=True), label=label
            ).update(last_request_at=when)
