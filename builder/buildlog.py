"""A build's log, written as it comes: lines land in the database in small batches."""

import time

from django.utils import timezone

from spacedock.spaces.models import Build, BuildLogLine, cut_line

FLUSH_SECONDS = 0.5
HEARTBEAT_SECONDS = 10


class BuildLog:
    def __init__(self, build: Build):
        self.build = build
        last = build.lines.order_by("-number").values_list("number", flat=True).first()
        self.next_number = 0 if last is None else last + 1
        self.pending: list[BuildLogLine] = []
        self.secrets: list[str] = []
        self.flushed_at = time.monotonic()
        self.beat_at = 0.0

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def write(self, text: str) -> None:
        self.pending.append(
            BuildLogLine(build=self.build, number=self.next_number, text=cut_line(self.redact(text)))
        )
        self.next_number += 1
        if time.monotonic() - self.flushed_at >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            BuildLogLine.objects.bulk_create(self.pending)
            self.pending = []
        self.flushed_at = time.monotonic()
        self.heartbeat()

    def tick(self) -> None:
        """Called about once a second: lines that came before a quiet spell still show up live."""
        if self.pending and time.monotonic() - self.flushed_at >= FLUSH_SECONDS:
            self.flush()
        else:
            self.heartbeat()

    def heartbeat(self) -> None:
        # The reaper fails builds whose heartbeat stops: a dead worker cannot say so itself.
        now = time.monotonic()
        if now - self.beat_at >= HEARTBEAT_SECONDS:
            Build.objects.filter(pk=self.build.pk).update(heartbeat=timezone.now())
            self.beat_at = now
