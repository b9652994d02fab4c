"""The runner's part of a space's other deployments: each pinned build (`pin--<id>`) and each
branch's preview (`<subdomain>--<branch>`) as a container of its own (spaces.models.Deployment).

The same order as for a space (runner/reconcile.py): a new container is routed only once it answers,
RUNNING is published only once it is routed, and going down the stage moves before the route goes.
A deployment's containers carry LABEL_DEPLOYMENT, which the space's own never do, so the two are
never taken for each other. They run under their space's claim, in the same job, after the space.
Simpler than a space: its run log is not kept, it runs on the space's memory limit with the default
CPUs and no GPU or volume, and a failure (RUNTIME_ERROR) stays until a new build of the branch; a
pin that failed is unpinned and pinned again.
"""

import time
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from runner.backend import Instance, RuntimeBackendError, Spec
from spacedock.labels import LABEL_DEPLOYMENT, LABEL_TARGET
from spacedock.spaces import stages
from spacedock.spaces.models import Deployment, RunLogLine

if TYPE_CHECKING:
    from runner.reconcile import Runner, Starting

S = stages.Stage


def deployment_of(instance: Instance) -> int | None:
    raw = instance.labels.get(LABEL_DEPLOYMENT)
    return int(raw) if raw else None


def target_of(deployment: Deployment) -> str:
    build = deployment.build
    if build is None or not build.image:
        return ""
    return f"{build.image}@{deployment.label}"


def reconcile_deployments(runner: "Runner", space_id: int, instances: list[Instance]) -> None:
    """Every deployment of one space, and the containers of deployments that are gone (unpinned,
    branch deleted): their route goes first (sync_proxy reads the rows), then they do."""
    rows = {
        d.pk: d for d in Deployment.objects.filter(space_id=space_id).select_related("build", "space__owner")
    }
    found: dict[int, dict[str, Instance]] = {}
    for instance in instances:
        if (dep_id := deployment_of(instance)) is not None:
            found.setdefault(dep_id, {})[instance.id] = instance
    gone = [dep_id for dep_id in found if dep_id not in rows]
    if gone:
        runner.sync_proxy()
    for dep_id in gone:
        runner.deployments_starting.pop(dep_id, None)
        for instance in found[dep_id].values():
            runner.backend.remove(instance.id)
    for deployment in rows.values():
        reconcile_one(runner, deployment, found.get(deployment.pk, {}))


def asleep(deployment: Deployment, current: Instance) -> bool:
    """Idle past SPACEDOCK_DEPLOYMENT_SLEEP_TIME: its stage says SLEEPING; the next pass stops it."""
    if deployment.stage != S.RUNNING:
        return False
    seen = [t for t in (deployment.last_request_at, current.started_at) if t]
    if not seen or timezone.now() - max(seen) < timedelta(seconds=settings.DEPLOYMENT_SLEEP_TIME):
        return False
    return stages.sleep(deployment)


def reconcile_one(runner: "Runner", deployment: Deployment, found: dict[str, Instance]) -> None:
    target = target_of(deployment)
    current = found.get(deployment.container_id)
    serving = current is not None and current.status == "running"
    if serving:
        asleep(deployment, current)
    keep_down = not target or deployment.stage == S.SLEEPING
    start = runner.deployments_starting.get(deployment.pk)
    if start is not None:
        if start.target == target and not keep_down:
            progress(runner, deployment, start)
            return
        runner.deployments_starting.pop(deployment.pk, None)
        if found.pop(start.container.id, None) is not None:
            runner.backend.remove(start.container.id)
    if keep_down:
        if not target:
            stages.stop(deployment)
        if deployment.container_id:
            unroute(runner, deployment)
        for instance in found.values():
            if instance.status == "running":
                runner.retire(instance, deployment.space)  # its in-flight requests finish first
            else:
                runner.backend.remove(instance.id)
        return
    if deployment.container_id and not serving:
        stages.app_lost(deployment)  # gone or stopped from outside: start afresh
        unroute(runner, deployment)
        if current is not None:
            runner.backend.remove(current.id)
        current = None
    if (
        deployment.stage in (S.RUNTIME_ERROR, S.BUILDING, S.BUILD_ERROR, S.CONFIG_ERROR, S.NO_APP_FILE)
        and not serving
    ):
        return  # nothing new to run until a build succeeds (or the row is made again)
    if serving and current.labels.get(LABEL_TARGET) == target:
        if deployment.stage in stages.TRANSITIONS["app_running"]:
            runner.sync_proxy()  # routed before it says RUNNING
            stages.app_running(deployment)
        for instance_id in found:
            if instance_id != current.id:
                runner.backend.remove(instance_id)
        return
    start_one(runner, deployment, target, live=current if serving else None, stale=found)


def start_one(
    runner: "Runner", deployment: Deployment, target: str, live: Instance | None, stale: dict
) -> None:
    from runner.reconcile import Starting

    if runner.firewall_problem:
        return  # a container started now could reach the host; the space's page says so
    for instance_id in stale:
        if live is None or instance_id != live.id:
            runner.backend.remove(instance_id)
    (stages.app_replacing if live is not None else stages.app_starting)(deployment)
    space, build = deployment.space, deployment.build
    config = deployment.run_config()
    spec = Spec(
        space_id=space.pk,
        name_hint=deployment.label[:40],
        image=build.image,
        target=target,
        generation=0,
        env=deployment.env(),
        app_port=config.app_port,
        memory_mb=space.run_memory_mb(),
        cpus=space.cpu_limit or settings.RUN_CPUS,
        pids=space.pids_limit or settings.RUN_PIDS,
        labels={LABEL_DEPLOYMENT: str(deployment.pk)},
    )
    try:
        container = runner.backend.run(spec)
    except RuntimeBackendError as exc:
        fail(runner, deployment, None, f"The container could not start: {exc}", live)
        return
    timeout = min(config.startup_duration_timeout or settings.STARTUP_TIMEOUT, settings.MAX_STARTUP_SECONDS)
    start = Starting(container, target, config, build.image, live, timeout, time.monotonic() + timeout)
    runner.deployments_starting[deployment.pk] = start
    progress(runner, deployment, start)


def progress(runner: "Runner", deployment: Deployment, start: "Starting") -> None:
    problem = runner.check_start(start)
    if problem is None:
        return
    runner.deployments_starting.pop(deployment.pk, None)
    if problem:
        fail(runner, deployment, start.container, problem, start.live)
        return
    container = runner.backend.get(start.container.id) or start.container
    port = container.port(start.config.app_port)
    address = "" if container.address == "127.0.0.1" else container.address
    Deployment.objects.filter(pk=deployment.pk).update(
        container_id=container.id, port=port, running_image=start.image, address=address
    )
    runner.sync_proxy()  # first the route, then the stage
    stages.app_running(deployment)
    if start.live is not None:
        runner.retire(start.live, deployment.space)


def fail(runner: "Runner", deployment: Deployment, container, reason: str, live: Instance | None) -> None:
    tail = runner.backend.tail(container.id, 30) if container is not None else ""
    message = RunLogLine.redact(
        deployment.space, f"{reason}\n\nLast lines of the log:\n{tail}" if tail else reason
    )
    if live is not None:
        stages.replacement_failed(deployment, message)
    else:
        stages.app_failed(deployment, message)
    if container is not None and (live is None or container.id != live.id):
        if container.id == deployment.container_id:
            unroute(runner, deployment)
        runner.backend.remove(container.id)


def unroute(runner: "Runner", deployment: Deployment) -> None:
    Deployment.objects.filter(pk=deployment.pk).update(
        container_id="", port=None, running_image="", address=""
    )
    deployment.container_id, deployment.port = "", None
    runner.sync_proxy()
