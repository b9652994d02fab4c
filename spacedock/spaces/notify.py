"""A nudge to the runner when desired state changes (a visitor woke a space, the owner paused it,
a build finished), so it acts at once. The Space methods that change what should run call
poke_on_commit.

With Redis it is a pub/sub message. Without (`make up` with nothing set: one host), it is a
datagram to a socket the runner listens on, in Linux's abstract namespace (no file to clean up),
named after the install. Either way, a nudge that is lost costs only the runner's timer.
"""

import hashlib
import logging
import socket
import threading

from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)


def channel() -> str:
    return f"{settings.INSTANCE}:runner"


def local_address() -> str:
    # Two installs on one host (their own data folders) never hear each other.
    install = hashlib.sha256(f"{settings.INSTANCE}\0{settings.DATA_DIR}".encode()).hexdigest()[:16]
    return f"\0spacedock-runner-{install}"


def poke() -> None:
    if not settings.REDIS_URL:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            try:
                sock.sendto(b"poke", local_address())
            except OSError:  # no runner listening (yet), or its queue is full: it wakes anyway
                pass
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
        _listen_locally(wake, stopping)
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


def _listen_locally(wake: threading.Event, stopping: threading.Event) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(local_address())
        except OSError as exc:  # another runner of this install has it: that one is nudged
            log.warning("runner nudges: %s; this runner acts on its timer", exc)
            return
        sock.settimeout(1.0)
        while not stopping.is_set():
            try:
                sock.recv(64)
            except TimeoutError:
                continue
            wake.set()
