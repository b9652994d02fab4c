import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "sd_"


def hash_token(raw: str) -> str:
    # Tokens carry 256 random bits, so a plain digest is as good as a slow hash here.
    return hashlib.sha256(raw.encode()).hexdigest()


class AccessToken(models.Model):
    """A secret a user gives to git and to API clients; only its hash is kept."""

    user = models.ForeignKey(User, models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=10, default="write")  # "read" or "write"
    digest = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=12)  # the first characters, to tell tokens apart
    created = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    @classmethod
    def issue(cls, user: User, name: str, scope: str = "write") -> tuple["AccessToken", str]:
        """Creates a token and returns it with its raw value, which is never stored."""
        if scope not in ("read", "write"):
            raise ValueError(f"unknown token scope {scope!r}")
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, name=name, scope=scope, digest=hash_token(raw), hint=raw[:8])
        return token, raw

    @classmethod
    def authenticate(cls, raw: str) -> "AccessToken | None":
        token = (
            cls.objects.select_related("user")
            .filter(digest=hash_token(raw), revoked__isnull=True, user__is_active=True)
            .first()
        )
        if token:
            now = timezone.now()
            # One write a minute is enough to tell "in use" from "forgotten".
            if token.last_used is None or (now - token.last_used).total_seconds() > 60:
                cls.objects.filter(pk=token.pk).update(last_used=now)
                token.last_used = now
        return token

    @property
    def can_write(self) -> bool:
        return self.scope == "write"

    def revoke(self) -> None:
        self.revoked = timezone.now()
        self.save(update_fields=["revoked"])


class QuotaExceeded(PermissionDenied):
    """A user asked for more than their quota allows; the message names the quota and the limit."""

    def __init__(self, quota: str, limit: int, what: str, status: int = 403):
        self.quota, self.limit, self.status = quota, limit, status
        super().__init__(
            f"Quota exceeded: {quota} (at most {limit} {what}). Free one up, or ask an administrator "
            "to raise your quota."
        )


class HardwareNotAllowed(QuotaExceeded):
    """The user's hardware quota does not list the flavour they asked for."""

    def __init__(self, flavour: str, allowed: list[str]):
        self.quota, self.limit, self.status = "hardware", len(allowed), 403
        PermissionDenied.__init__(
            self,
            f"Quota exceeded: hardware ({flavour} is not among the flavours you may use: "
            f"{', '.join(allowed) or 'none'}). Ask an administrator to add it to your quota.",
        )


# A quota's setting and how its message counts it.
QUOTAS = {
    "spaces": ("QUOTA_SPACES", "spaces"),
    "concurrent_builds": ("QUOTA_CONCURRENT_BUILDS", "builds queued or running at once"),
    "running_spaces": ("QUOTA_RUNNING_SPACES", "spaces running at once"),
    "running_memory_mb": ("QUOTA_RUNNING_MEMORY_MB", "MB of memory across running spaces"),
    "never_sleep": ("QUOTA_NEVER_SLEEP", "spaces that never sleep"),
    "pinned_builds": ("QUOTA_PINNED_BUILDS", "pinned builds"),
    "sdk_versions": ("QUOTA_SDK_VERSIONS", "Gradio versions across your builds"),
    "gpus": ("QUOTA_GPUS", "GPUs across running spaces"),
    "buckets": ("QUOTA_BUCKETS", "storage buckets"),
}


class Quota(models.Model):
    """One user's quotas where an administrator set them; an empty field means the setting."""

    user = models.OneToOneField(User, models.CASCADE, related_name="quota")
    spaces = models.IntegerField(null=True, blank=True)
    concurrent_builds = models.IntegerField(null=True, blank=True)
    running_spaces = models.IntegerField(null=True, blank=True)
    running_memory_mb = models.IntegerField(null=True, blank=True)
    never_sleep = models.IntegerField(null=True, blank=True)
    pinned_builds = models.IntegerField(null=True, blank=True)
    sdk_versions = models.IntegerField(null=True, blank=True)
    gpus = models.IntegerField(null=True, blank=True)
    buckets = models.IntegerField(null=True, blank=True)
    # Flavours this user may run on, comma-separated; empty means SPACEDOCK_QUOTA_HARDWARE.
    hardware = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return f"quota of {self.user.username}"

    @classmethod
    def limit(cls, user: User, quota: str) -> int:
        row = cls.objects.filter(user=user).values_list(quota, flat=True).first()
        return row if row is not None else getattr(settings, QUOTAS[quota][0])

    @classmethod
    def hardware_allowed(cls, user: User) -> list[str]:
        """The flavours `user` may run on: their own list where an administrator set one, else the setting."""
        own = cls.objects.filter(user=user).values_list("hardware", flat=True).first()
        if own:
            return [name.strip() for name in own.split(",") if name.strip()]
        return list(settings.QUOTA_HARDWARE)

    @classmethod
    def require_hardware(cls, user: User, flavour: str) -> None:
        """QuotaExceeded naming the hardware quota when `user` may not run on `flavour`."""
        allowed = cls.hardware_allowed(user)
        if flavour not in allowed:
            raise HardwareNotAllowed(flavour, allowed)

    @classmethod
    def require(cls, user: User, quota: str, used: int, adding: int = 1, status: int = 403) -> None:
        """Raises QuotaExceeded when `used + adding` is past the user's `quota`."""
        limit = cls.limit(user, quota)
        if used + adding > limit:
            raise QuotaExceeded(quota, limit, QUOTAS[quota][1], status)
