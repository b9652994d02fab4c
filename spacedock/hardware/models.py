"""Which flavour each space asks for and runs on, and which of the host's GPUs each space holds.

Desired state (SpaceHardware.requested) is written by the API and the pages; actual state
(SpaceHardware.current, GpuAssignment) by the runner through place(), mark_running() and
release(). docs/architecture.md ("Hardware and volumes") says when the runner calls which.
"""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import User
from django.db import models, transaction
from django.utils import timezone

from spacedock.accounts.models import Quota
from spacedock.hardware.flavours import Flavour
from spacedock.hardware.gpus import host_gpus
from spacedock.hardware.resources import Resources, container_resources
from spacedock.spaces.models import Space


class UnknownFlavour(ValueError):
    """A flavour name that is not in SPACEDOCK_HARDWARE; the message lists the ones that are."""

    def __init__(self, name: object):
        super().__init__(
            f"{str(name)[:40]!r} is not a hardware flavour here. "
            f"Choose one of: {', '.join(settings.HARDWARE)}"
        )


def flavour_named(name: object) -> Flavour:
    if not isinstance(name, str) or name not in settings.HARDWARE:
        raise UnknownFlavour(name)
    return settings.HARDWARE[name]


class SpaceHardware(models.Model):
    space = models.OneToOneField(Space, models.CASCADE, primary_key=True, related_name="hardware")
    # Desired: the flavour the owner asked for (the API, the settings page).
    requested = models.CharField(max_length=40)
    # Actual: the flavour the running container was started with (the runner); empty when none runs.
    current = models.CharField(max_length=40, blank=True)
    updated = models.DateTimeField(default=timezone.now)

    @classmethod
    def of(cls, space: Space) -> "SpaceHardware":
        """The space's row, or an unsaved one on the default flavour."""
        row = cls.objects.filter(space=space).first()
        return row or cls(space=space, requested=settings.HARDWARE_DEFAULT)

    def flavour(self) -> Flavour:
        """The requested flavour; the default when the operator has since removed it from the table."""
        return settings.HARDWARE.get(self.requested) or settings.HARDWARE[settings.HARDWARE_DEFAULT]

    def current_for_api(self) -> str | None:
        """hardware.current as the Hub reports it: the running flavour, None when nothing runs.
        Until the runner records it (mark_running), a running container has the default's limits."""
        if not self.space.container_id:
            return None
        return self.current or settings.HARDWARE_DEFAULT

    @staticmethod
    def suggested(space: Space) -> str:
        """The front matter's suggested_hardware at the latest push ("" when none)."""
        build = space.own_builds().first()
        return (build.config or {}).get("suggested_hardware", "") if build else ""

    @classmethod
    def request(cls, space: Space, name: object, user: User) -> "SpaceHardware":
        """Moves the space to flavour `name`: UnknownFlavour, or QuotaExceeded naming the hardware or
        GPU quota. A change restarts the space, so the runner starts it with the new limits."""
        flavour = flavour_named(name)
        owner = space.owner
        Quota.require_hardware(owner, flavour.name)
        if flavour.gpus:
            held = sum(
                settings.HARDWARE[row.requested].gpus
                for row in cls.objects.filter(space__owner=owner, space__paused=False)
                .exclude(space=space)
                .exclude(space__stage__in=("SLEEPING", "PAUSED", "STOPPED"))
                if row.requested in settings.HARDWARE
            )
            Quota.require(owner, "gpus", held, flavour.gpus)
        if space.deployed_build_id and not space.paused:  # it restarts with the flavour's memory
            space.check_run_quota(memory_mb=space.memory_limit_mb or flavour.memory_mb)
        with transaction.atomic():
            row, _ = cls.objects.select_for_update().get_or_create(
                space=space, defaults={"requested": settings.HARDWARE_DEFAULT}
            )
            changed = row.requested != flavour.name
            row.requested, row.updated = flavour.name, timezone.now()
            row.save(update_fields=["requested", "updated"])
            if changed and space.deployed_build_id:
                space.request_restart()
        return row

    @classmethod
    def mark_running(cls, space: Space, flavour: str) -> None:
        """The runner: a container on `flavour` serves the space."""
        cls.objects.update_or_create(
            space=space,
            defaults={"current": flavour},
            create_defaults={"current": flavour, "requested": flavour},
        )


class Gpu(models.Model):
    """One of the host's GPUs as the engine names it (an index or a UUID)."""

    id = models.CharField(primary_key=True, max_length=100)
    kind = models.CharField(max_length=40, blank=True)


class GpuAssignment(models.Model):
    """A GPU a space holds. On an exclusive flavour, the GPU is held by that space alone."""

    gpu = models.ForeignKey(Gpu, models.CASCADE, related_name="assignments")
    space = models.ForeignKey(Space, models.CASCADE, related_name="gpu_assignments")
    shared = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["gpu", "space"], name="unique_gpu_per_space")]

    @classmethod
    def acquire(cls, space: Space, flavour: Flavour) -> list[str] | None:
        """The GPU ids `space` may use on `flavour`, assigning them if needed; None when not enough
        are free (queued for hardware). Calling it again for a space that holds them returns the same."""
        if not flavour.gpus:
            cls.release(space)
            return []
        host = host_gpus()
        with transaction.atomic():
            for gpu_id, kind in host:
                Gpu.objects.update_or_create(id=gpu_id, defaults={"kind": kind})
            # Locks every GPU row: two spaces placed at once see each other's assignments.
            gpus = list(Gpu.objects.select_for_update().filter(id__in=[g for g, _ in host]).order_by("id"))
            held = list(cls.objects.filter(space=space).order_by("gpu_id"))
            if len(held) == flavour.gpus and all(a.shared == flavour.shared_gpu for a in held):
                return [a.gpu_id for a in held]
            cls.objects.filter(space=space).delete()
            taken = cls.objects.exclude(space=space)
            if flavour.shared_gpu:
                # Shared: skip only GPUs an exclusive space holds; fill the least loaded first.
                blocked = set(taken.filter(shared=False).values_list("gpu_id", flat=True))
            else:
                blocked = set(taken.values_list("gpu_id", flat=True))
            load = dict(taken.values("gpu_id").annotate(n=models.Count("id")).values_list("gpu_id", "n"))
            free = [
                g
                for g in gpus
                if g.id not in blocked and (not flavour.gpu_kind or g.kind in ("", flavour.gpu_kind))
            ]
            free.sort(key=lambda g: (load.get(g.id, 0), g.id))
            if len(free) < flavour.gpus:
                return None
            chosen = free[: flavour.gpus]
            cls.objects.bulk_create([cls(gpu=g, space=space, shared=flavour.shared_gpu) for g in chosen])
        return [g.id for g in chosen]

    @classmethod
    def release(cls, space: Space) -> int:
        """Gives the space's GPUs back (sleep, pause, stop, a move to a CPU flavour); returns how many."""
        return cls.objects.filter(space=space).delete()[0]


def queued_message(flavour: Flavour) -> str:
    """What the page says while a space waits for GPUs."""
    kind = f" ({flavour.gpu_kind})" if flavour.gpu_kind else ""
    matching = [g for g, k in host_gpus() if not flavour.gpu_kind or k in ("", flavour.gpu_kind)]
    if not matching:
        return (
            f"Queued for hardware: {flavour.name} needs {flavour.gpus} GPU(s){kind} "
            "and this machine has none. "
            "Choose another flavour in the settings, or ask the operator for GPU hardware."
        )
    return (
        f"Queued for hardware: {flavour.name} needs {flavour.gpus} GPU(s){kind}; all {len(matching)} "
        "are in use by other spaces. The space starts when one is free."
    )


@dataclass
class Placement:
    """What the runner starts a space with: resources, or why it must wait (queued)."""

    flavour: Flavour
    resources: Resources | None
    message: str = ""

    @property
    def queued(self) -> bool:
        return self.resources is None


def place(space: Space) -> Placement:
    """The runner, before starting a container: the space's flavour, its GPUs and limits."""
    flavour = SpaceHardware.of(space).flavour()
    gpu_ids = GpuAssignment.acquire(space, flavour)
    if gpu_ids is None:
        return Placement(flavour, None, queued_message(flavour))
    resources = container_resources(flavour, gpu_ids, space.cpu_limit, space.memory_limit_mb)
    return Placement(flavour, resources)


def release(space: Space) -> None:
    """The runner, once a space's container is gone (sleep, pause, stop): its GPUs go back."""
    GpuAssignment.release(space)
    SpaceHardware.objects.filter(space=space).update(current="")
