"""A budget for server-sent event streams, so that log followers never take every web thread.

gunicorn's gthread worker gives each response a thread until it ends, and a log stream lasts as
long as the build or the app. Each web process lets at most `STREAM_SLOTS` streams follow at
once and `STREAMS_PER_CLIENT` from one address; the other threads stay free for pages, pushes,
`forward_auth` and wakes. A stream also ends after `STREAM_MAX_SECONDS`: the client reconnects.
"""

import threading
from collections import Counter
from collections.abc import Callable

from django.conf import settings

_lock = threading.Lock()
_open: Counter = Counter()


class StreamsExhausted(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def take_stream_slot(client: str) -> Callable[[], None]:
    """Take one of this process's stream slots for `client`; call what it returns to give it back."""
    with _lock:
        if sum(_open.values()) >= settings.STREAM_SLOTS:
            raise StreamsExhausted("Too many log streams are open on this server; try again in a few seconds")
        if _open[client] >= settings.STREAMS_PER_CLIENT:
            raise StreamsExhausted(
                f"Too many log streams open from your address (at most {settings.STREAMS_PER_CLIENT}); "
                "close one and try again"
            )
        _open[client] += 1
    released = False

    def release() -> None:
        nonlocal released
        with _lock:
            if released:
                return
            released = True
            _open[client] -= 1
            if _open[client] <= 0:
                del _open[client]

    return release


class SlotStream:
    """An event iterator that gives its slot back when the server closes the response, whether
    the stream ended, the client went away, or it never started."""

    def __init__(self, events, release: Callable[[], None]):
        self.events, self.release = events, release

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.events)

    def close(self) -> None:
        try:
            self.events.close()
        finally:
            self.release()
