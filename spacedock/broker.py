"""The filesystem broker of the embedded default (no REDIS_URL), with whole messages only.

kombu's filesystem transport creates a message's file and then writes it. A worker that lists the
queue folder in between takes the empty file, cannot decode it and stops ("Unrecoverable error:
JSONDecodeError"), and the message (a build, say) is lost; under honcho (`make up`) every other
process stops with it. Here a message is written under a name no worker reads and then renamed
into place: a rename within one folder is atomic, so a worker sees a whole message or none.

And a worker with nothing to do waits for a message to be renamed into the queue folder
(inotify), not for kombu's next look a polling interval later: a build starts when it is queued.
"""

import ctypes
import os
import select
import uuid
from queue import Empty
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        # kombu's own name (milliseconds first: workers take messages in name order).
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # A leading dot: `_get` reads only names whose part after the first dot is "<queue>.msg".
        partial = os.path.join(self.data_folder_out, f".{name}.partial")
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


# inotify(7): a file renamed into the folder (Channel._put), or written there by a writer that
# does not rename (kombu's own).
IN_MOVED_TO, IN_CLOSE_WRITE = 0x80, 0x08
# Where no event comes (a folder on a network filesystem, say), the worker still looks this often.
UNWATCHED_LOOK_SECONDS = 1.0


def watch(folder: str) -> int | None:
    """A descriptor that becomes readable when a message arrives in `folder`; None where the
    kernel or the C library has no inotify (then the worker polls, as kombu does)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    if libc.inotify_add_watch(fd, os.fsencode(folder), IN_MOVED_TO | IN_CLOSE_WRITE) < 0:
        os.close(fd)
        return None
    return fd


class Transport(filesystem.Transport):
    Channel = Channel
    watched: int | None = None
    unwatchable = False  # watch() found no inotify: asked once, not on every drain

    def drain_events(self, connection, timeout=None):
        """kombu's loop, but between two empty looks it waits for a message to arrive instead of
        sleeping the polling interval."""
        if self.watched is None and not self.unwatchable:
            self.watched = watch(self.client.transport_options.get("data_folder_in", "data_in"))
            self.unwatchable = self.watched is None
        if self.watched is None:
            return super().drain_events(connection, timeout)
        started = monotonic()
        while True:
            try:
                return self.cycle.get(self._deliver, timeout=timeout)
            except Empty:
                left = None if timeout is None else timeout - (monotonic() - started)
                if left is not None and left <= 0:
                    raise TimeoutError() from None
                wait = UNWATCHED_LOOK_SECONDS if left is None else min(left, UNWATCHED_LOOK_SECONDS)
                # An event since the last look is already queued on the descriptor: no message is
                # missed between the look and this wait.
                if select.select([self.watched], [], [], wait)[0]:
                    try:
                        os.read(self.watched, 65536)
                    except BlockingIOError:
                        pass

    def close_connection(self, connection):
        if self.watched is not None:
            os.close(self.watched)
            self.watched = None
        super().close_connection(connection)
