"""A build's log, written as it comes: lines land in the database in small batches."""

import contextlib
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone

from spacedock.spaces.models import Build, BuildLogLine, cut_line

FLUSH_SECONDS = 0.5
HEARTBEAT_SECONDS = 10
# How long a build goes on while its database is away (a Postgres restart takes seconds); past
# that the build fails like any crash, and the reaper records it once the database is back.
DATABASE_OUTAGE_SECONDS = 120

T = TypeVar("T")


class BuildLog:
    def __init__(self, build: Build):
        self.build = build
        last = build.lines.order_by("-number").values_list("number", flat=True).first()
        self.next_number = 0 if last is None else last + 1
        self.pending: list[BuildLogLine] = []
        self.secrets: list[str] = []
        self.flushed_at = time.monotonic()
        self.beat_at = 0.0
        self.database_lost_at: float | None = None

    def unless_database_away(self, query: Callable[[], T], default: T) -> T:
        """Runs a query; while the database is briefly away, returns default instead, so the build
        goes on and its bookkeeping (log lines, heartbeat) catches up at the next try."""
        try:
            result = query()
        except (OperationalError, InterfaceError):
            self._database_lost()
            return default
        self.database_lost_at = None
        return result

    def when_database_back(self, query: Callable[[], T]) -> T:
        """Runs a query that must happen (the build's outcome), waiting out a short outage."""
        while True:
            try:
                result = query()
            except (OperationalError, InterfaceError):
                self._database_lost()
                time.sleep(1)
                continue
            self.database_lost_at = None
            return result

    def _database_lost(self) -> None:
        with contextlib.suppress(Exception):
            connection.close()  # Django opens a new one at the next query
        now = time.monotonic()
        self.database_lost_at = self.database_lost_at or now
        if now - self.database_lost_at > DATABASE_OUTAGE_SECONDS:
            raise

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
        if self.pending and self.unless_database_away(self._store_pending, False):
            self.pending = []
        self.flushed_at = time.monotonic()
        self.heartbeat()

    def _store_pending(self) -> bool:
        # A batch whose commit reached the server just before the connection broke is sent again.
        BuildLogLine.objects.bulk_create(self.pending, ignore_conflicts=True)
        return True

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
            beat = Build.objects.filter(pk=self.build.pk).update
            if self.unless_database_away(lambda: beat(heartbeat=timezone.now()), None) is not None:
                self.beat_at = now

    def cancelled(self) -> bool:
        return self.unless_database_away(self.build.is_cancelled, False)
