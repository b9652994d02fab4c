"""A space's stage and a build's state: their names, and the only code that changes them.

Stages are the Hugging Face Hub's names, what the runtime API and the pages show. Every change
of a stage is one function below (a transition); the stages each transition may start from, and
the stage each of them moves to, are one row of TRANSITIONS. A transition is one conditional
UPDATE (`SET stage = CASE ... WHERE pk = ? AND stage IN (<its "from" stages>)`), so of two
writers that race (the builder, the runner, a visitor's wake, the owner's restart) the one whose
"from" no longer holds changes nothing and is told so (False): no writer puts back a stage it
read before another moved it.

Who moves a stage:
- a push (Space.record_push, a factory rebuild): build_queued, config_error, no_app_file;
- the builder (Build.start, succeed, fail): build_started, build_succeeded, build_failed;
- the runner: app_starting, hardware_queued, app_replacing, app_lost, app_running, app_failed,
  replacement_failed, sleep, pause, stop;
- a visit to a sleeping space, or the owner's restart: wake.

RUNNING means the app answers at its URL: the runner calls app_running only once Caddy routes the
space's host to the container, and moves a space off RUNNING (pause, stop, app_lost, app_failed)
before it takes the route away (runner/reconcile.py).

PAUSED is the owner's stop (desired state `paused`), SLEEPING the runner's after the sleep time
(a visit wakes it). STOPPED is the runner's when there is nothing to run: the deployed build is
gone (an operator deleted its row) or has no image. Nothing can wake a STOPPED space; a new build
(build_succeeded) or a rollback (app_starting) starts it again.

A Deployment (a pinned build at pin--<id>, a branch's preview at <subdomain>--<branch>) has a stage
of its own, moved by the same table and the same functions: each runner and visitor transition
below takes a Space or a Deployment, and a build of a branch other than the default moves its
preview's stage, never the space's (a preview's success never changes what the space serves).
Deployments are never paused: their `pause` is unused.

A build's state moves queued -> building -> succeeded | failed | cancelled (BUILD_TRANSITIONS),
each move a conditional UPDATE as well. A build transition that also moves the space does both in
one transaction and locks the space's row first, as a push does, so a newer push (which cancels
older builds) and a finishing build never interleave.
"""

from typing import TYPE_CHECKING

from django.apps import apps
from django.db import models, transaction
from django.db.models import Case, Q, QuerySet, Value, When
from django.utils import timezone

if TYPE_CHECKING:
    from spacedock.spaces.models import Build, Deployment, Space

    Row = Space | Deployment


class Stage(models.TextChoices):
    NO_APP_FILE = "NO_APP_FILE"
    CONFIG_ERROR = "CONFIG_ERROR"
    BUILDING = "BUILDING"
    BUILD_ERROR = "BUILD_ERROR"
    APP_STARTING = "APP_STARTING"
    RUNNING = "RUNNING"
    RUNNING_BUILDING = "RUNNING_BUILDING"
    RUNNING_APP_STARTING = "RUNNING_APP_STARTING"
    RUNTIME_ERROR = "RUNTIME_ERROR"
    SLEEPING = "SLEEPING"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"


class BuildState(models.TextChoices):
    QUEUED = "queued"
    BUILDING = "building"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


STAGES: tuple[str, ...] = tuple(Stage.values)
# What the pages say for each stage, in the Hub's words; the API keeps the codes.
STAGE_WORDS: dict[str, str] = {
    "NO_APP_FILE": "No app file",
    "CONFIG_ERROR": "Config error",
    "BUILDING": "Building",
    "BUILD_ERROR": "Build error",
    "APP_STARTING": "Starting",
    "RUNNING": "Running",
    "RUNNING_BUILDING": "Running · building",
    "RUNNING_APP_STARTING": "Running · restarting",
    "RUNTIME_ERROR": "Runtime error",
    "SLEEPING": "Sleeping",
    "PAUSED": "Paused",
    "STOPPED": "Stopped",
}
# An app serves at the space's URL in these (RUNNING_* while a newer version builds or starts).
LIVE_STAGES: tuple[str, ...] = ("RUNNING", "RUNNING_BUILDING", "RUNNING_APP_STARTING")
BUILD_STATES: tuple[str, ...] = tuple(BuildState.values)
ACTIVE_BUILD_STATES: tuple[str, ...] = ("queued", "building")

S = Stage


def _all_but(*excluded: str) -> tuple[str, ...]:
    return tuple(s for s in STAGES if s not in excluded)


def _to(stage: str, sources: tuple[str, ...]) -> dict[str, str]:
    return dict.fromkeys(sources, stage)


_QUEUED = {**_to(S.BUILDING, _all_but(*LIVE_STAGES)), **_to(S.RUNNING_BUILDING, LIVE_STAGES)}

# transition -> {stage it may start from: stage it moves to}. A stage not in a row is refused.
TRANSITIONS: dict[str, dict[str, str]] = {
    # A push with a buildable config; a running app keeps serving while the build runs.
    "build_queued": _QUEUED,
    "config_error": _to(S.CONFIG_ERROR, STAGES),
    "no_app_file": _to(S.NO_APP_FILE, STAGES),
    # A worker took the build (the runner may have moved the stage since the push).
    "build_started": _QUEUED,
    "build_succeeded": {
        **_to(S.APP_STARTING, _all_but(*LIVE_STAGES)),
        **_to(S.RUNNING_APP_STARTING, LIVE_STAGES),
    },
    # A running app keeps serving (the message says the new build failed); a paused space stays so.
    "build_failed": {**_to(S.BUILD_ERROR, _all_but(S.PAUSED, *LIVE_STAGES)), **_to(S.RUNNING, LIVE_STAGES)},
    # The runner starts a container while none serves. Not while a build runs: its result decides.
    "app_starting": _to(S.APP_STARTING, _all_but(S.APP_STARTING, S.BUILDING, S.RUNNING_BUILDING)),
    # A start waits for hardware (no free GPU): nothing new starts, the message says why. A space
    # with nothing serving says APP_STARTING; one whose previous container still serves stays RUNNING.
    "hardware_queued": {
        **_to(S.APP_STARTING, _all_but(S.BUILDING, S.RUNNING_BUILDING, *LIVE_STAGES)),
        S.RUNNING: S.RUNNING,
        S.RUNNING_APP_STARTING: S.RUNNING,
    },
    # The runner starts a new container while the old one serves.
    "app_replacing": _to(S.RUNNING_APP_STARTING, (S.RUNNING, S.RUNNING_APP_STARTING)),
    # The serving container is gone or stopped (the engine restarted, someone removed it); the runner
    # starts another. RUNNING_BUILDING stays: the build's result decides what runs next.
    "app_lost": _to(S.APP_STARTING, (S.RUNNING, S.RUNNING_APP_STARTING)),
    # The container answers and Caddy routes to it. RUNNING itself is left alone (and its message,
    # e.g. that a newer build failed), as is RUNNING_BUILDING: the build still runs.
    "app_running": _to(S.RUNNING, (S.APP_STARTING, S.RUNNING_APP_STARTING, S.PAUSED, S.STOPPED)),
    # Nothing serves: the app crashed, never answered, or ran out of memory. A space meant to be
    # down stays so, and BUILDING stays: the failed container was an older build's.
    "app_failed": _to(S.RUNTIME_ERROR, _all_but(S.BUILDING, S.PAUSED, S.SLEEPING, S.STOPPED)),
    # A new container did not start; the previous one still serves.
    "replacement_failed": {
        S.RUNNING: S.RUNNING,
        S.RUNNING_APP_STARTING: S.RUNNING,
        S.RUNNING_BUILDING: S.RUNNING_BUILDING,
    },
    "sleep": {S.RUNNING: S.SLEEPING},
    "wake": {S.SLEEPING: S.APP_STARTING},
    "pause": _to(S.PAUSED, _all_but(S.PAUSED)),
    # Nothing to run any more: what claimed to run or start is stopped; a build under way stays.
    "stop": {
        **_to(S.STOPPED, (S.APP_STARTING, S.RUNNING, S.RUNNING_APP_STARTING, S.SLEEPING)),
        S.RUNNING_BUILDING: S.BUILDING,
    },
}

B = BuildState
BUILD_TRANSITIONS: dict[str, dict[str, str]] = {
    "start": {B.QUEUED: B.BUILDING},
    "succeed": {B.BUILDING: B.SUCCEEDED},
    "fail": _to(B.FAILED, ACTIVE_BUILD_STATES),
    "cancel": _to(B.CANCELLED, ACTIVE_BUILD_STATES),
}


def _space_model():
    return apps.get_model("spaces", "Space")


def _build_model():
    return apps.get_model("spaces", "Build")


def _deployment_model():
    return apps.get_model("spaces", "Deployment")


def _by_source(field: str, moves: dict[str, str], values: dict[str, str]) -> Value | Case:
    """The value for each target stage, chosen by the row's current `field` inside the UPDATE."""
    if len(set(values.values())) == 1:
        return Value(next(iter(values.values())))
    whens = [
        When(**{f"{field}__in": [s for s, t in moves.items() if t == target]}, then=Value(value))
        for target, value in values.items()
    ]
    return Case(*whens, output_field=models.CharField())


Message = str | dict[str, str]


def _move(model, pk: int, transition: str, message: Message, where: Q | None, fields: dict) -> bool:
    moves = TRANSITIONS[transition]
    targets = set(moves.values())
    messages = message if isinstance(message, dict) else dict.fromkeys(targets, message)
    updated = model.objects.filter(where or Q(), pk=pk, stage__in=list(moves)).update(
        stage=_by_source("stage", moves, {t: t for t in targets}),
        stage_message=_by_source("stage", moves, {t: messages.get(t, "") for t in targets}),
        **fields,
    )
    if updated:
        from spacedock.spaces import notify

        notify.stage_moved(model._meta.model_name, pk)  # a held wake-page poll answers at once
    return bool(updated)


def move(space_id: int, transition: str, message: Message = "", where: Q | None = None, **fields) -> bool:
    """Applies one row of TRANSITIONS to a space: True when its stage was one the row starts from.

    `message` is the stage message, or one per target stage; `fields` are written with it.
    """
    updated = _move(_space_model(), space_id, transition, message, where, fields)
    if updated:
        from spacedock.spaces import webhooks

        webhooks.stage_changed(space_id)
    return updated


def move_deployment(
    deployment_id: int, transition: str, message: Message = "", where: Q | None = None, **fields
) -> bool:
    """The same row of TRANSITIONS applied to a pin's or a preview's own stage (no webhook: the
    space's stage did not move)."""
    return _move(_deployment_model(), deployment_id, transition, message, where, fields)


def move_builds(builds: QuerySet, transition: str, **fields) -> int:
    """Applies one row of BUILD_TRANSITIONS to each of `builds` in a state it starts from."""
    moves = BUILD_TRANSITIONS[transition]
    state = _by_source("state", moves, {t: t for t in set(moves.values())})
    return builds.filter(state__in=list(moves)).update(state=state, **fields)


def move_build(build: "Build", transition: str, **fields) -> bool:
    """One build's move; the instance shows its row afterwards, moved or not."""
    updated = move_builds(_build_model().objects.filter(pk=build.pk), transition, **fields)
    build.refresh_from_db()
    return bool(updated)


def _is_deployment(row: "Row") -> bool:
    return row._meta.model_name == "deployment"


def _moved(row: "Row", transition: str, message: Message = "", where: Q | None = None, **fields) -> bool:
    mover = move_deployment if _is_deployment(row) else move
    changed = mover(row.pk, transition, message, where, **fields)
    if changed:
        row.refresh_from_db(fields=["stage", "stage_message", *fields])
    return changed


def _lock_space(space_id: int) -> None:
    # The order a push takes (the space's row, then its builds): the two wait for each other, never deadlock.
    list(_space_model().objects.select_for_update().filter(pk=space_id).values_list("pk", flat=True))


def _build_finished(build: "Build") -> None:
    from spacedock.spaces import webhooks

    webhooks.build_finished(build)


def _refresh_cached_space(build: "Build") -> None:
    if build.__class__.space.is_cached(build):
        build.space.refresh_from_db()


# -- a push ------------------------------------------------------------------------------------


def build_queued(space: "Row") -> bool:
    return _moved(space, "build_queued")


def config_error(build: "Build", message: str) -> bool:
    """A push whose README cannot describe a space: its build fails at once, and the space says why."""
    return _refused(build, "config_error", message)


def no_app_file(build: "Build", message: str) -> bool:
    return _refused(build, "no_app_file", message)


def _refused(build: "Build", transition: str, message: str) -> bool:
    with transaction.atomic():
        _lock_space(build.space_id)
        if not move_build(build, "fail", error=message, finished=timezone.now()):
            return False
        _move_line(build, transition, message)
    _refresh_cached_space(build)
    return True


def _move_line(build: "Build", transition: str, message: Message = "") -> bool:
    """Moves the stage a build answers to: its space's for the default branch, else its branch's
    preview's (nothing when the branch was deleted meanwhile)."""
    if build.on_default_branch:
        return move(build.space_id, transition, message)
    preview = build.preview()
    return preview is not None and move_deployment(preview.pk, transition, message)


def cancel_builds(space: "Space", reason: str, ref: str | None = None) -> int:
    """Cancels the space's queued and running builds (a newer push supersedes them); with `ref`,
    only that branch's: a push to a preview's branch leaves the space's own build alone."""
    builds = _build_model().objects.filter(space_id=space.pk)
    if ref is not None:
        builds = builds.filter(ref=ref)
    return move_builds(builds, "cancel", error=reason, finished=timezone.now())


# -- the builder -------------------------------------------------------------------------------


def build_started(build: "Build") -> bool:
    """queued -> building; False when the build was cancelled before a worker took it."""
    now = timezone.now()
    with transaction.atomic():
        _lock_space(build.space_id)
        if not move_build(build, "start", started=now, heartbeat=now):
            return False
        _move_line(build, "build_started")
    _refresh_cached_space(build)
    return True


def build_succeeded(build: "Build", image: str) -> bool:
    """building -> succeeded, and its image becomes what the runner should run: at the space's
    host for the default branch, at its preview's host for another branch."""
    with transaction.atomic():
        _lock_space(build.space_id)
        if not move_build(build, "succeed", image=image, finished=timezone.now()):
            return False
        # Desired state, whatever the stage: this build is what should run now.
        if build.on_default_branch:
            _space_model().objects.filter(pk=build.space_id).update(deployed_build=build.pk, paused=False)
        elif preview := build.preview():
            _deployment_model().objects.filter(pk=preview.pk).update(build=build.pk)
        _move_line(build, "build_succeeded")
        _build_finished(build)
    _refresh_cached_space(build)
    return True


def build_failed(build: "Build", error: str) -> bool:
    """queued or building -> failed; the space (or the preview) says why, with what to do about it."""
    with transaction.atomic():
        _lock_space(build.space_id)
        if not move_build(build, "fail", error=error, finished=timezone.now()):
            return False
        still_running = f"The build of {build.commit_sha[:7]} failed: {error}"
        _move_line(build, "build_failed", {S.RUNNING: still_running, S.BUILD_ERROR: error})
        _build_finished(build)
    _refresh_cached_space(build)
    return True


def build_cancelled(build: "Build", reason: str) -> bool:
    return move_build(build, "cancel", error=reason, finished=timezone.now())


# -- the runner --------------------------------------------------------------------------------


def app_starting(space: "Row") -> bool:
    return _moved(space, "app_starting")


def app_replacing(space: "Row") -> bool:
    return _moved(space, "app_replacing")


def app_lost(space: "Row") -> bool:
    """Call before the lost container's route goes."""
    return _moved(space, "app_lost")


def hardware_queued(space: "Space", message: str) -> bool:
    """The runner could not place the space (placement.message); it tries again on a later pass.
    Written only when the message changes, so a pass after pass of waiting sends no webhooks."""
    return _moved(space, "hardware_queued", message, where=~Q(stage_message=message))


def app_running(space: "Row", message: str = "") -> bool:
    """Call only once Caddy routes the space's (or deployment's) host to the container that answers.
    `message`: what the owner should know about how it runs (a bucket mounted read-only because it
    is full)."""
    moved = _moved(space, "app_running", message)
    if moved and not _is_deployment(space) and space.deployed_build_id:
        build = _build_model().objects.filter(pk=space.deployed_build_id).select_related("space").first()
        if build is not None:
            build.request_capture()  # now that it answers, the gallery can have its picture
    return moved


def app_failed(space: "Row", message: str) -> bool:
    return _moved(space, "app_failed", message)


def replacement_failed(space: "Row", message: str) -> bool:
    return _moved(
        space, "replacement_failed", f"The new version did not start, the previous one still runs. {message}"
    )


def sleep(space: "Row") -> bool:
    return _moved(space, "sleep")


def pause(space: "Row") -> bool:
    return _moved(space, "pause")


def stop(space: "Row") -> bool:
    return _moved(space, "stop")


# -- a visitor or the owner --------------------------------------------------------------------


def wake(space: "Row") -> bool:
    """A sleeping space that is not paused and has a build to run starts again; a sleeping
    deployment that has a build, likewise (only its own stage moves, never its space's)."""
    where = Q(build__isnull=False) if _is_deployment(space) else Q(paused=False, deployed_build__isnull=False)
    return _moved(space, "wake", where=where, last_request_at=timezone.now())
