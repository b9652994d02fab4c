"""A nudge to the runner when desired state changes (a visitor woke a space, the owner paused it),
so it acts at once. The Space methods that change what should run call poke_on_commit.

With Redis it is a pub/sub message; without, the runner's short timer picks the change up.
"""

import logging
import threading

from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)


def channel() -> str:
    return f"{settings.INSTANCE}:runner"


def poke() -> None:
    if not settings.REDIS_URL:
        return
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2).publish(channel(), "poke")
    except redis.RedisError as exc:
        log.warning("could not nudge the runner: %s", exc)


def poke_on_commit() -> None:
    """Pokes once the change is committed: a runner woken sooner would read the old state."""
    transaction.on_commit(poke)


def listen(wake: threading.Event, stopping: threading.Event) -> None:
    if not settings.REDIS_URL:
        return
    import redis

    while not stopping.is_set():
        try:
            pubsub = redis.Redis.from_url(settings.REDIS_URL).pubsub()
            pubsub.subscribe(channel())
            while not stopping.is_set():
                if pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0):
                    wake.set()
        except redis.RedisError:
            stopping.wait(2)
