"""A nudge to the runner when desired state changes (a visitor woke a space, the owner paused it,
a build finished), so it acts at once. The Space methods that change what should run call
poke_on_commit.

With Redis it is a pub/sub message. Without (`make up` with nothing set: one host), it is a
datagram to a socket the runner listens on, in Linux's abstract namespace (no file to clean up),
named after the install. Either way, a nudge that is lost costs only the runner's timer.

The other way round, a stage that moved (stages.py) is published too, for the wake page's held
polls (stage_watch): the page reloads into the app the moment the runner says RUNNING.
"""

import functools
import hashlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)


# Longer than any hold (spacedock/proxy/views.py HOLD_SECONDS): a read that times out is an error.
HOLD_SOCKET_SECONDS = 30


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
        publisher(settings.REDIS_URL).publish(channel(), "poke")
    except redis.RedisError as exc:
        log.warning("could not nudge the runner: %s", exc)


@functools.cache
def publisher(url: str):
    """One client per process and URL for nudges and stage moves: its pool keeps the connection
    (redis-py opens a new one after a fork), where a client per message opened one each time."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=2)


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


# Without Redis, a held wake-page poll reads the row again this often: one host, one process's
# own database, where a read is cheap.
UNWATCHED_READ_SECONDS = 0.05


def read_again_soon(seconds: float) -> None:
    """stage_watch's wait where no stage move can be heard (no Redis, or Redis failing)."""
    time.sleep(min(seconds, UNWATCHED_READ_SECONDS))


def stage_channel(kind: str, pk: int) -> str:
    return f"{settings.INSTANCE}:stage:{kind}:{pk}"


def stage_moved(kind: str, pk: int) -> None:
    """Tells the polls held on this row (a space, or a pin's or preview's deployment) that its stage
    or message moved, once the move is committed: a poll told sooner would read the old row."""
    if not settings.REDIS_URL:
        return
    import redis

    def publish() -> None:
        try:
            publisher(settings.REDIS_URL).publish(stage_channel(kind, pk), "moved")
        except redis.RedisError as exc:  # the poll reads the row again when its hold ends
            log.warning("could not publish a stage move: %s", exc)

    transaction.on_commit(publish)


@contextmanager
def stage_watch(kind: str, pk: int) -> Iterator[Callable[[float], None]]:
    """A wait(seconds) that returns early once the row's stage moves (stage_moved). Subscribed
    on entry: read the row after entering, and no move in between is missed."""
    if not settings.REDIS_URL:
        yield read_again_soon
        return
    import redis

    pubsub = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=HOLD_SOCKET_SECONDS).pubsub()
    try:
        pubsub.subscribe(stage_channel(kind, pk))
    except redis.RedisError as exc:
        log.warning("cannot watch stage moves, reading the row again instead: %s", exc)
        pubsub.close()
        yield read_again_soon
        return

    def wait(seconds: float) -> None:
        try:
            pubsub.get_message(ignore_subscribe_messages=True, timeout=seconds)
        except redis.RedisError:
            read_again_soon(seconds)

    try:
        yield wait
    finally:
        pubsub.close()
