import hashlib
import secrets

from django.contrib.auth.models import User
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
