"""The worker's side of webhooks (spacedock/spaces/webhooks.py): one attempt per run, the next
one scheduled with a longer wait until SPACEDOCK_WEBHOOK_ATTEMPTS are used."""

from celery import shared_task

from spacedock.spaces.webhooks import DELIVER_TASK


@shared_task(name=DELIVER_TASK, acks_late=True)
def deliver(delivery_id: int) -> None:
    from spacedock.spaces.models import WebhookDelivery

    delivery = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if delivery is None or delivery.state != "pending":
        return
    wait = delivery.attempt()
    if wait is not None:
        deliver.apply_async(args=[delivery_id], countdown=wait)
