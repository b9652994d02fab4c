"""The runner's own bookkeeping for a space: who works on it, which target failed, how it sleeps."""

import os
import socket
from datetime import timedelta

from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

CLAIM_SECONDS = 30
RUNNER_ID = f"{socket.gethostname()}:{os.getpid()}"


class SleepTier(models.TextChoices):
    """How a SLEEPING space sleeps (docs/architecture.md, "Serve"); "" while it does not sleep."""

    AWAKE = "", "awake"
    # Its container is paused (the cgroup freezer): no CPU, its memory kept; a visit unpauses it.
    FROZEN = "frozen", "frozen"
    # Its container is gone (no memory, the image kept); a visit starts a new one.
    DEEP = "deep", "deep"


class Runtime(models.Model):
    space = models.OneToOneField("spaces.Space", models.CASCADE, primary_key=True, related_name="runtime")
    claimed_by = models.CharField(max_length=100, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    # "<image>@<generation>" that ended in RUNTIME_ERROR: not tried again until a restart or a new build.
    failed_target = models.CharField(max_length=300, blank=True)
    # Where Caddy dials the serving instance, with Space.port: on the local backend the container's
    # address on the spaces' bridge (Space.port is then the app's own port); on Swarm, the address
    # of the node the space's task runs on. Empty is 127.0.0.1.
    address = models.CharField(max_length=100, blank=True)
    # Placement constraints in Swarm's syntax, comma-separated (`node.labels.gpu==true`), set by the
    # operator (`./manage.py cluster place`); the local backend has one host and ignores them.
    placement = models.CharField(max_length=300, blank=True)
    # How it sleeps while its stage is SLEEPING; the space page reads it through this relation.
    sleep_tier = models.CharField(max_length=10, blank=True, choices=SleepTier.choices)
    # When its container was frozen, and the bytes its cgroup held then (the engine's memory_stats
    # usage: memory.usage_in_bytes on cgroup v1, memory.current on v2). A frozen cgroup allocates
    # nothing more, so the figure taken once stands for the frozen tier's memory budget.
    frozen_at = models.DateTimeField(null=True, blank=True)
    frozen_bytes = models.BigIntegerField(default=0)

    @property
    def constraints(self) -> list[str]:
        return [c.strip() for c in self.placement.split(",") if c.strip()]

    @classmethod
    def too_cold(cls, budget_bytes: int, deep_after: timedelta) -> set[int]:
        """Frozen spaces that go to deep sleep now: those frozen longer than `deep_after`, and past
        the frozen tier's memory budget the least recently used (by last request), so the spaces
        visited last stay the ones that wake at once."""
        cutoff = timezone.now() - deep_after
        rows = (
            cls.objects.filter(sleep_tier=SleepTier.FROZEN)
            .annotate(used=Coalesce("space__last_request_at", "frozen_at"))
            .order_by("-used", "-pk")
            .values_list("space_id", "frozen_bytes", "frozen_at")
        )
        cold, held = set(), 0
        for space_id, size, frozen_at in rows:
            if frozen_at is None or frozen_at < cutoff:
                cold.add(space_id)
                continue
            held += size
            if held > budget_bytes:  # this one and every one used before it
                cold.add(space_id)
        return cold

    @classmethod
    def claim(cls, space_id: int, runner_id: str = RUNNER_ID) -> bool:
        """Takes (or renews) the lease on one space; False while another live runner holds it."""
        now = timezone.now()
        cls.objects.get_or_create(space_id=space_id)
        free = Q(claimed_by="") | Q(claimed_by=runner_id) | Q(claimed_until__lt=now)
        return bool(
            cls.objects.filter(free, space_id=space_id).update(
                claimed_by=runner_id, claimed_until=now + timedelta(seconds=CLAIM_SECONDS)
            )
        )

    @classmethod
    def release_all(cls, runner_id: str = RUNNER_ID) -> None:
        cls.objects.filter(claimed_by=runner_id).update(claimed_by="", claimed_until=None)


class Adoption(models.Model):
    """A warm pool container that a space (or its pin or preview) adopted (runner/pool.py).

    Docker cannot change a running container's labels, so the labels it would have been started
    with live here, by its id, and the local backend reads them as its own. Making the row is the
    claim: of two runners that pick one idle container, one adopts it.
    """

    container_id = models.CharField(max_length=64, primary_key=True)
    # Not a foreign key: a deleted space's container is an orphan the runner removes as any other.
    space_id = models.IntegerField(db_index=True)
    labels = models.JSONField()
    adopted_at = models.DateTimeField(default=timezone.now)

    @classmethod
    def claim(cls, container_id: str, space_id: int, labels: dict) -> bool:
        try:
            with transaction.atomic():
                cls.objects.create(container_id=container_id, space_id=space_id, labels=labels)
            return True
        except IntegrityError:
            return False
