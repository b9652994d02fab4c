"""An app's output made into log lines the runner can afford: whatever the app prints.

Two bounds (issue 13): a line without a newline is held to its first bytes, so a container that
prints a gigabyte without one costs the runner no more memory than one log line; and a container
printing faster than SPACEDOCK_LOG_RUN_LINES_PER_SECOND keeps the first lines of each second and
says in its log how many it dropped, so one noisy app cannot fill the database or hold its writer.
"""

import time
from collections.abc import Callable, Iterable, Iterator

from django.conf import settings

# Room left under LOG_LINE_MAX for the note that says how much was cut, so that the stored line is
# not cut a second time by RunLogLine.append.
NOTE_ROOM = 64


def _line(kept: bytearray, cut: int) -> str:
    text = bytes(kept).decode("utf-8", "replace").rstrip("\r")
    return f"{text}… [{cut} more bytes cut]" if cut else text


def split_lines(chunks: Iterable[bytes], limit: int | None = None) -> Iterator[str]:
    """The lines of a byte stream; past `limit` bytes, a line's bytes are counted, not kept."""
    limit = limit or max(settings.LOG_LINE_MAX - NOTE_ROOM, 1)
    kept, cut = bytearray(), 0
    for chunk in chunks:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            room = max(limit - len(kept), 0)
            kept += piece[:room]
            cut += max(len(piece) - room, 0)
            if end < 0:
                break
            yield _line(kept, cut)
            kept, cut = bytearray(), 0
            start = end + 1
    if kept or cut:
        yield _line(kept, cut)


def dropped_note(dropped: int, rate: int) -> str:
    return (
        f"===== {dropped} lines dropped: the app printed more than {rate} lines a second "
        f"(SPACEDOCK_LOG_RUN_LINES_PER_SECOND); the log keeps the first {rate} of each second ====="
    )


def sampled(
    lines: Iterable[str], rate: int | None = None, clock: Callable[[], float] = time.monotonic
) -> Iterator[str]:
    """The first `rate` lines of each second, and a note of how many were dropped."""
    rate = rate or settings.LOG_RUN_LINES_PER_SECOND
    window, written, dropped = clock(), 0, 0
    for line in lines:
        now = clock()
        if now - window >= 1:
            if dropped:
                yield dropped_note(dropped, rate)
            window, written, dropped = now, 0, 0
        if written >= rate:
            dropped += 1
            continue
        written += 1
        yield line
    if dropped:
        yield dropped_note(dropped, rate)
