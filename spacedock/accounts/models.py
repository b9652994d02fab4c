import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "sd_"
OAUTH_SCOPE = "oauth"


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
    # Tokens an app got by "Sign in with Spacedock" (scope "oauth") end; tokens people make do not.
    expires = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    @classmethod
    def issue(cls, user: User, name: str, scope: str = "write", expires=None) -> tuple["AccessToken", str]:
        """Creates a token and returns it with its raw value, which is never stored. Scope "oauth"
        is an app's sign-in token: it says who the user is (whoami, userinfo) and reads nothing."""
        if scope not in ("read", "write", OAUTH_SCOPE):
            raise ValueError(f"unknown token scope {scope!r}")
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user, name=name, scope=scope, digest=hash_token(raw), hint=raw[:8], expires=expires
        )
        return token, raw

    @classmethod
    def authenticate(cls, raw: str) -> "AccessToken | None":
        token = (
            cls.objects.select_related("user")
            .filter(digest=hash_token(raw), revoked__isnull=True, user__is_active=True)
            .filter(models.Q(expires__isnull=True) | models.Q(expires__gt=timezone.now()))
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

    @property
    def acts_for_user(self) -> bool:
        """False for an app's sign-in token: it identifies its user and never acts as them."""
        return self.scope != OAUTH_SCOPE

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


class Role(models.TextChoices):
    READ = "read"  # sees the organization's private spaces
    WRITE = "write"  # and pushes to, creates and changes its spaces
    ADMIN = "admin"  # and adds, changes and removes members


ROLE_ORDER = {Role.READ: 0, Role.WRITE: 1, Role.ADMIN: 2}


class Organization(models.Model):
    """A namespace that owns spaces for its members, as on the Hub.

    Its name is a User row (`account`), so `org/name` is stored, routed, and given a subdomain the
    same way as `user/name`, and names of users and organizations never clash. That account is
    inactive with no password: it can never sign in or hold a token. Members act in it by role."""

    account = models.OneToOneField(User, models.CASCADE, related_name="organization")
    full_name = models.CharField(max_length=200, blank=True)
    created = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return self.account.username

    @classmethod
    def create(cls, name: str, creator: User, full_name: str = "") -> "Organization":
        """The organization, with `creator` as its first admin. The caller checks the name."""
        account = User(username=name, is_active=False)
        account.set_unusable_password()
        account.save()
        org = cls.objects.create(account=account, full_name=full_name)
        Membership.objects.create(org=org, user=creator, role=Role.ADMIN)
        return org

    def role_of(self, user) -> str | None:
        if not (user and user.is_authenticated):
            return None
        return self.memberships.filter(user=user).values_list("role", flat=True).first()

    def set_role(self, by: User, username: str, role: str) -> "Membership":
        """Adds `username` with `role`, or changes their role; only an admin may."""
        self.require_admin(by)
        if role not in Role.values:
            raise ValueError(f"role must be one of {', '.join(Role.values)}")
        user = User.objects.filter(username=username, is_active=True, organization__isnull=True).first()
        if user is None:
            raise ValueError(f"There is no user named {username!r}")
        if role != Role.ADMIN:
            self._keep_an_admin(user)
        membership, _ = Membership.objects.update_or_create(org=self, user=user, defaults={"role": role})
        return membership

    def remove(self, by: User, username: str) -> bool:
        self.require_admin(by)
        user = User.objects.filter(username=username).first()
        if user is None:
            return False
        self._keep_an_admin(user)
        deleted, _ = self.memberships.filter(user=user).delete()
        return bool(deleted)

    def require_admin(self, user) -> None:
        if self.role_of(user) != Role.ADMIN and not (user and user.is_staff):
            raise PermissionDenied(f"Only an admin of {self.name} may change its members")

    def _keep_an_admin(self, leaving: User) -> None:
        admins = self.memberships.filter(role=Role.ADMIN)
        if admins.filter(user=leaving).exists() and admins.count() == 1:
            raise ValueError(
                f"{leaving.username} is the last admin of {self.name}: make someone else admin first"
            )


class Membership(models.Model):
    org = models.ForeignKey(Organization, models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.READ)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "user"], name="one_membership_per_org")]
        ordering = ["org", "user__username"]

    def __str__(self) -> str:
        return f"{self.user.username} in {self.org.name} ({self.role})"


def namespace_role(user, owner_id: int) -> str | None:
    """The role `user` has in the namespace of account `owner_id`: "admin" for their own, their
    membership's role in an organization, None otherwise."""
    if not (user and user.is_authenticated):
        return None
    if user.pk == owner_id:
        return Role.ADMIN
    return (
        Membership.objects.filter(org__account_id=owner_id, user=user).values_list("role", flat=True).first()
    )


def may_create_in(user, namespace: str) -> bool:
    """Whether `user` may create a space under `namespace`: their own name, or an organization
    where they have write or admin."""
    if not (user and user.is_authenticated):
        return False
    if namespace == user.username:
        return True
    return Membership.objects.filter(
        org__account__username=namespace, user=user, role__in=(Role.WRITE, Role.ADMIN)
    ).exists()


def creatable_namespace(user, namespace: str) -> User | None:
    """The account a space created under `namespace` by `user` belongs to (the user, or the
    organization's account), or None when `user` may not create there."""
    if not may_create_in(user, namespace):
        return None
    return user if namespace == user.username else User.objects.get(username=namespace)


def writable_namespaces(user) -> list[str]:
    """The user's own name, then the organizations where they may create spaces."""
    orgs = Membership.objects.filter(user=user, role__in=(Role.WRITE, Role.ADMIN)).values_list(
        "org__account__username", flat=True
    )
    return [user.username, *sorted(orgs)]


class OAuthCode(models.Model):
    """An authorization code of "Sign in with Spacedock": handed to the browser once, exchanged by
    the space's server once, within a minute (accounts/oauth.py)."""

    digest = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(User, models.CASCADE, related_name="+")
    space = models.ForeignKey("spaces.Space", models.CASCADE, related_name="+")
    redirect_uri = models.TextField()
    scope = models.CharField(max_length=200)
    nonce = models.CharField(max_length=200, blank=True)
    code_challenge = models.CharField(max_length=128, blank=True)
    created = models.DateTimeField(default=timezone.now)
    expires = models.DateTimeField()
    used = models.BooleanField(default=False)
