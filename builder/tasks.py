from celery import shared_task


@shared_task(name="builder.tasks.build", acks_late=True)
def build(build_id: int) -> None:
    """Turns a queued Build into an image. The image building itself is the builder's issue."""
