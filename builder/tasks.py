import logging

from celery import shared_task

from spacedock.spaces.models import Build

log = logging.getLogger(__name__)


@shared_task(name="builder.tasks.build", acks_late=True)
def build(build_id: int) -> None:
    """Turns a queued Build into an image. The image building itself is the builder's issue."""
    build = Build.objects.filter(pk=build_id).first()
    if build is None:
        log.warning("build %s no longer exists", build_id)
        return
