"""Celery tasks that turn a pushed commit into a container image."""

import logging
import shutil
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from celery import shared_task
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.utils import timezone

from builder import docker_build
from builder.buildlog import BuildLog
from builder.images import build_space_image, prune_images
from spacedock import buildqueues
from spacedock.spaces import thumbnails
from spacedock.spaces.models import Build, BuildLogLine, RunLogLine

log = logging.getLogger(__name__)
_announcing = threading.Event()


@worker_ready.connect
def announce_build_queues(sender, **kwargs) -> None:
    """Tells the platform which build queues this worker takes, now and while it runs
    (spacedock/buildqueues.py): a space placed on a label builds on that label's queue only then."""
    queues = [q.name for q in sender.task_consumer.queues if q.name.split(".")[0] == buildqueues.DEFAULT]

    def renew() -> None:
        while True:
            try:
                buildqueues.register(sender.hostname, queues)
            except Exception as exc:  # the cache (Redis) away: builds take the default queue meanwhile
                log.warning("could not announce the build queues %s: %s", queues, exc)
            if _announcing.wait(buildqueues.REFRESH_SECONDS):
                return

    renewing = threading.Thread(target=renew, name="build-queues", daemon=True)
    renewing.start()

    @worker_shutdown.connect(weak=False)
    def withdraw(**kwargs) -> None:
        _announcing.set()
        renewing.join(5)
        buildqueues.withdraw(sender.hostname, queues)


@shared_task(name="builder.tasks.build", acks_late=True, time_limit=settings.BUILD_TIMEOUT + 300)
def build(build_id: int) -> None:
    build = Build.objects.select_related("space__owner").filter(pk=build_id).first()
    if build is None:
        log.warning("build %s no longer exists", build_id)
        return
    if not build.start():
        log.info("build %s is %s: nothing to do", build_id, build.state)
        return
    deadline = time.monotonic() + settings.BUILD_TIMEOUT
    workdir = Path(tempfile.mkdtemp(prefix=f"build-{build.pk}-", dir=settings.BUILD_TMP_DIR))
    buildlog = BuildLog(build)
    try:
        image = build_space_image(build, workdir, buildlog, deadline)
    except docker_build.BuildStopped as stop:
        buildlog.flush()
        if str(stop) == "timeout":
            limit = settings.BUILD_TIMEOUT
            took = f"{limit // 60} minutes" if limit % 60 == 0 else f"{limit} seconds"
            message = (
                f"The build was stopped after {took}, the time limit "
                "(SPACEDOCK_BUILD_TIMEOUT). Make it faster, or ask the operator for a longer limit."
            )
            buildlog.write(f"==> {message}")
            buildlog.flush()
            buildlog.when_database_back(lambda: build.fail(message))
        else:
            buildlog.write(f"==> Build stopped: {stop}")
    except docker_build.BuildError as exc:
        buildlog.write(f"==> Build failed: {exc}")
        buildlog.flush()
        reason = buildlog.redact(str(exc))
        buildlog.when_database_back(lambda: build.fail(reason))
    except Exception as exc:
        log.exception("build %s crashed", build_id)
        message = (
            f"Spacedock failed while building ({type(exc).__name__}: {exc}); the operator's log has more."
        )
        buildlog.write(f"==> {message}")
        buildlog.flush()
        buildlog.when_database_back(lambda: build.fail(buildlog.redact(message)))
    else:
        buildlog.write(f"==> Built {image}")
        buildlog.flush()
        buildlog.when_database_back(lambda: build.succeed(image))
        try:
            prune_images(build.space)
        except docker_build.BuildError as exc:  # the build stands; old images go next time
            log.warning("build %s: pruning old images failed: %s", build_id, exc)
    finally:
        # The folder goes first: nothing after it (a database still away) may leave it behind.
        shutil.rmtree(workdir, ignore_errors=True)
        buildlog.flush()


build_task = build  # the task, for code where `build` names a row


@shared_task(name="builder.tasks.capture_live_app", time_limit=120)
def capture_live_app(build_id: int, picture: bool = True) -> None:
    """What a public build that has just gone live shows: the gallery card's picture, and the
    script its Gradio page loads, which an embedded <gradio-app> loads from the app too."""
    build = Build.objects.select_related("space").filter(pk=build_id).first()
    if build is None:
        return
    space = build.space
    if space.is_private or space.deployed_build_id != build.pk or space.stage != "RUNNING":
        return  # it changed meanwhile; the next time it goes live asks again
    if not build.web_component_js and build.space_config().sdk == "gradio":
        if script := thumbnails.gradio_script(space.url):
            Build.objects.filter(pk=build.pk).update(web_component_js=script)
    if picture and build.thumbnail_taken is None:  # the web side decided (settings.THUMBNAILS)
        if thumbnails.capture(space.url, thumbnails.path_for(build.pk)):
            Build.objects.filter(pk=build.pk).update(thumbnail_taken=timezone.now())


@shared_task(name="builder.tasks.reap_stuck_builds")
def reap_stuck_builds(stale_after: float | None = None) -> int:
    """Fails builds whose worker stopped sending heartbeats: killed, or its machine restarted; and
    sends builds waiting on a node label's queue that no worker takes any more to the default queue."""
    queued = list(Build.objects.filter(state="queued").values_list("pk", flat=True))
    for build_id in buildqueues.stranded(queued):
        # The message left on the label's queue does nothing if a worker takes it later: the build
        # is no longer queued by then.
        build_task.apply_async(args=[build_id], queue=buildqueues.DEFAULT)
        buildqueues.forget(build_id)
        log.info("build %s: no worker takes its node label's queue any more; sent to builds", build_id)
    stale_after = settings.BUILD_STALE_AFTER if stale_after is None else stale_after
    cutoff = timezone.now() - timedelta(seconds=stale_after)
    reaped = 0
    for build in Build.objects.filter(state="building", heartbeat__lt=cutoff).select_related("space"):
        build.fail(
            "The build stopped: its worker was killed or its machine restarted. "
            "Push again, or use Factory rebuild, to build it anew."
        )
        for leftover in Path(settings.BUILD_TMP_DIR).glob(f"build-{build.pk}-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        reaped += 1
    return reaped


@shared_task(name="builder.tasks.prune_logs")
def prune_logs() -> int:
    """Old log lines go: each space keeps its run log's last lines and its last builds' logs."""
    return RunLogLine.prune(settings.LOG_RUN_LINES_KEPT) + BuildLogLine.prune(settings.LOG_BUILDS_KEPT)
