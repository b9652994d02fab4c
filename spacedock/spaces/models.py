import hashlib
import math
import re
import secrets
import shutil
import subprocess
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from spacedock import buildqueues
from spacedock.accounts import oauth
from spacedock.accounts.models import Quota, Role, namespace_role
from spacedock.celery import app as celery_app
from spacedock.gitserver import repo as gitrepo
from spacedock.gitserver.models import LfsObject
from spacedock.gitserver.repo import DEFAULT_BRANCH
from spacedock.spaces import config as spaceconfig
from spacedock.spaces import notify, stages, thumbnails, webhooks
from spacedock.spaces.causes import Cause, find_cause
from spacedock.spaces.stages import LIVE_STAGES, STAGES, BuildState, Stage  # noqa: F401

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


def valid_name(name: str) -> bool:
    return bool(NAME_RE.fullmatch(name)) and ".." not in name and not name.endswith(".git")


def make_subdomain(owner: str, name: str) -> str:
    """A DNS label for the space, unique among spaces; callers store it once."""
    base = re.sub(r"[^a-z0-9-]+", "-", f"{owner}-{name}".lower()).strip("-")
    base = re.sub(r"-{2,}", "-", base)[:55].strip("-")
    candidate = base
    if Space.objects.filter(subdomain=candidate).exists():
        digest = hashlib.sha256(f"{owner}/{name}".encode()).hexdigest()
        candidate = f"{base}-{digest[:6]}"
    return candidate


# Trending: each like or visit adds weight * 2**(age of the platform / half-life), so the
# stored sum, read at any moment, ranks a recent event above an older one of the same
# weight, and an event HALF_LIFE old counts half. No periodic job has to decay anything.
# With a week's half-life the factor stays within a float until about 2045; before
# then, move the epoch and divide every stored score by the same factor.
TRENDING_EPOCH = 1767225600  # 2026-01-01
TRENDING_HALF_LIFE = 7 * 86400
LIKE_WEIGHT, VISIT_WEIGHT = 10.0, 1.0
VISIT_WINDOW = 3600  # seconds in which one visitor's requests to one space are one visit


def site_origin() -> str:
    """The platform's own origin (scheme, host and port of SITE_URL), as a CSP source."""
    parts = urlsplit(settings.SITE_URL)
    return f"{parts.scheme}://{parts.netloc}"


def trending_points(weight: float, at=None) -> float:
    seconds = (at or timezone.now()).timestamp() - TRENDING_EPOCH
    return weight * math.pow(2.0, seconds / TRENDING_HALF_LIFE)


# A variable's key becomes an environment variable name and a BuildKit secret id, so it
# must never hold a path separator, a dot, a comma or an "=". The database enforces the
# same rule (Variable.Meta), so no code path can store a key that skipped this check.
ENV_KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,99}$"
ENV_KEY_RE = re.compile(ENV_KEY_PATTERN)
RESERVED_ENV = ("SPACE_ID", "SPACE_AUTHOR_NAME", "SPACE_REPO_NAME", "SPACE_TITLE", "SPACE_HOST", "SYSTEM")


VISIBILITIES = ("public", "private")
BUILD_TASK = "builder.tasks.build"
CAPTURE_TASK = "builder.tasks.capture_live_app"
PRUNE_TASK = "builder.images.prune_space_images"


MAX_SLEEP_TIME = 365 * 24 * 3600


def check_sleep_time(seconds: object) -> int:
    """Seconds idle before sleeping, when allowed (at least a minute, or -1 for never); else ValueError."""
    if (
        not isinstance(seconds, int)
        or isinstance(seconds, bool)
        or (seconds < 60 and seconds != -1)
        or seconds > MAX_SLEEP_TIME
    ):
        raise ValueError(
            f"The sleep time is a whole number of seconds, from 60 to {MAX_SLEEP_TIME} (a year), "
            "or -1 to never sleep."
        )
    return seconds


def check_variable_key(key: object) -> str:
    """The key, when it may name a variable or secret; else ValueError saying what to use."""
    if not isinstance(key, str) or not ENV_KEY_RE.fullmatch(key):
        raise ValueError(
            f"{str(key)[:100]!r} is not a valid variable name: use letters, digits and _, "
            "not starting with a digit, at most 100 characters"
        )
    if key in RESERVED_ENV:
        raise ValueError(f"{key} is set by Spacedock itself and cannot be overridden")
    return key


class Space(models.Model):
    owner = models.ForeignKey(User, models.CASCADE, related_name="spaces")
    name = models.CharField(max_length=96)
    subdomain = models.CharField(max_length=63, unique=True)
    visibility = models.CharField(max_length=10, default="public")  # "public" or "private"
    sleep_time = models.IntegerField(default=172800)  # seconds idle before sleeping; -1 never
    likes = models.IntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    # From README.md front matter at the latest pushed head (the gallery and pages show these);
    # what a build runs with is its own Build.config.
    title = models.CharField(max_length=200, blank=True)
    emoji = models.CharField(max_length=20, default="🚀")
    color_from = models.CharField(max_length=10, default="blue")
    color_to = models.CharField(max_length=10, default="indigo")
    sdk = models.CharField(max_length=10, blank=True)
    sdk_version = models.CharField(max_length=20, blank=True)
    python_version = models.CharField(max_length=10, blank=True)
    app_file = models.CharField(max_length=200, blank=True)
    app_port = models.IntegerField(default=7860)
    short_description = models.CharField(max_length=200, blank=True)
    tags = models.JSONField(default=list, blank=True)
    pinned = models.BooleanField(default=False)
    license = models.CharField(max_length=50, blank=True)
    startup_duration_timeout = models.IntegerField(default=1800)
    disable_embedding = models.BooleanField(default=False)
    # Named so, not "models": that name would shadow django.db.models in this class.
    linked_models = models.JSONField(default=list, blank=True)
    linked_datasets = models.JSONField(default=list, blank=True)
    head_sha = models.CharField(max_length=40, blank=True)

    # Desired state, which the runner makes real.
    paused = models.BooleanField(default=False)
    # Bumped by a restart or a change of variables: a container of an older generation is replaced.
    generation = models.IntegerField(default=0)
    # Per-space limits an admin may set; empty means the settings' defaults.
    memory_limit_mb = models.IntegerField(null=True, blank=True)
    cpu_limit = models.FloatField(null=True, blank=True)
    pids_limit = models.IntegerField(null=True, blank=True)
    visits = models.IntegerField(default=0)
    deployed_build = models.ForeignKey("Build", models.SET_NULL, null=True, blank=True, related_name="+")

    # Runtime state, which the runner owns; the stage moves only through spaces/stages.py.
    stage = models.CharField(max_length=24, choices=Stage.choices, default=Stage.NO_APP_FILE)
    stage_message = models.TextField(blank=True)
    running_image = models.CharField(max_length=200, blank=True)
    container_id = models.CharField(max_length=80, blank=True)
    port = models.IntegerField(null=True, blank=True)
    last_request_at = models.DateTimeField(null=True, blank=True)
    # Likes and visits, each worth more the more recent it is (see bump_trending).
    trending_score = models.FloatField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="unique_space_per_owner")]
        ordering = ["-updated"]
        # The gallery's sorts: each reads one index in order and stops after a page.
        indexes = [
            models.Index(fields=["-trending_score"], name="space_trending"),
            models.Index(fields=["-likes"], name="space_likes"),
            models.Index(fields=["-updated"], name="space_updated"),
            models.Index(fields=["-created"], name="space_created"),
        ]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.owner.username}/{self.name}"

    @property
    def repo_path(self):
        return gitrepo.path_for(self.owner.username, self.name)

    @property
    def host(self) -> str:
        return f"{self.subdomain}.{settings.SPACES_DOMAIN}"

    @property
    def url(self) -> str:
        return f"{settings.SCHEME}://{self.host}{settings.PORT_SUFFIX}/"

    @property
    def app_address(self) -> str:
        """Where Caddy reaches the serving app, with `port`: the runner's Runtime.address (on the
        local engine the container's bridge address, on Swarm its node's), read through its relation."""
        try:
            return self.runtime.address or "127.0.0.1"
        except ObjectDoesNotExist:
            return "127.0.0.1"

    @property
    def thumbnail_url(self) -> str | None:
        """The gallery picture of what runs now; None until one is taken (the card shows the emoji)."""
        build = self.deployed_build
        if self.is_private or build is None or build.thumbnail_taken is None:
            return None
        return f"/thumbnails/{build.pk}.png"

    @property
    def git_url(self) -> str:
        return f"{settings.SITE_URL}/spaces/{self.full_name}"

    @property
    def is_private(self) -> bool:
        return self.visibility == "private"

    def can_read(self, user) -> bool:
        """Public, or the caller owns it, is staff, or is a member of its organization (any role)."""
        if not self.is_private:
            return True
        return bool(user and user.is_authenticated and (user.is_staff or namespace_role(user, self.owner_id)))

    def can_write(self, user) -> bool:
        """The owner, staff, or a member of its organization with write or admin."""
        if not (user and user.is_authenticated):
            return False
        return user.is_staff or namespace_role(user, self.owner_id) in (Role.WRITE, Role.ADMIN)

    def can_delete(self, user) -> bool:
        """The owner, staff, or an admin of its organization: write members push, they do not delete."""
        if not (user and user.is_authenticated):
            return False
        return user.is_staff or namespace_role(user, self.owner_id) == Role.ADMIN

    def require_delete(self, user) -> None:
        if not self.can_delete(user):
            raise PermissionDenied(f"Only an admin of {self.owner.username} may delete {self.full_name}")

    @classmethod
    def create(cls, owner: User, name: str, **fields) -> "Space":
        Quota.require(owner, "spaces", owner.spaces.count())
        space = cls.objects.create(
            owner=owner, name=name, subdomain=make_subdomain(owner.username, name), **fields
        )
        gitrepo.init(space.repo_path)
        return space

    # What apply_config writes: the head's config, saved with the push.
    HEAD_FIELDS = (
        "title", "emoji", "color_from", "color_to", "sdk", "sdk_version", "python_version", "app_file",
        "app_port", "short_description", "tags", "pinned", "license", "startup_duration_timeout",
        "disable_embedding", "linked_models", "linked_datasets",
    )  # fmt: skip

    def apply_config(self, config: spaceconfig.SpaceConfig) -> None:
        self.title = config.title or self.name
        self.emoji = config.emoji
        self.color_from = config.colorFrom
        self.color_to = config.colorTo
        for key in (
            "sdk",
            "sdk_version",
            "python_version",
            "app_file",
            "app_port",
            "short_description",
            "tags",
            "pinned",
            "license",
            "startup_duration_timeout",
            "disable_embedding",
        ):
            setattr(self, key, getattr(config, key))
        self.linked_models = config.models
        self.linked_datasets = config.datasets

    def read_config(self, sha: str) -> spaceconfig.SpaceConfig:
        """What README.md at `sha` says; ConfigError says what to fix. A README past
        SPACEDOCK_MAX_README_KB is a config error before any of it is read: a push of a
        gigabyte README must not be loaded into the hook's memory."""
        try:
            readme = gitrepo.read_file(self.repo_path, sha, "README.md", settings.MAX_README_BYTES)
        except gitrepo.TooLarge as exc:
            raise spaceconfig.ConfigError(f"{exc}. Keep README.md's front matter short.") from None
        if readme is None:
            raise spaceconfig.ConfigError(
                f"README.md is missing. Add one that starts with:\n{spaceconfig.EXAMPLE}"
            )
        return spaceconfig.parse(readme.decode("utf-8", "replace"))

    def head_config(self) -> spaceconfig.SpaceConfig:
        """The head's config, from the fields apply_config wrote."""
        return spaceconfig.SpaceConfig(
            title=self.title,
            emoji=self.emoji,
            colorFrom=self.color_from,
            colorTo=self.color_to,
            sdk=self.sdk or "gradio",
            sdk_version=self.sdk_version,
            python_version=self.python_version,
            app_file=self.app_file,
            app_port=self.app_port,
            short_description=self.short_description,
            tags=list(self.tags),
            pinned=self.pinned,
            license=self.license,
            startup_duration_timeout=self.startup_duration_timeout,
            disable_embedding=self.disable_embedding,
            models=list(self.linked_models),
            datasets=list(self.linked_datasets),
        )

    def request_restart(self) -> None:
        """Asks the runner for a fresh container of the deployed image."""
        Space.objects.filter(pk=self.pk).update(generation=models.F("generation") + 1, paused=False)
        self.refresh_from_db(fields=["generation", "paused"])
        notify.poke_on_commit()

    def pause(self) -> None:
        Space.objects.filter(pk=self.pk).update(paused=True)
        self.paused = True
        notify.poke_on_commit()

    def set_sleep_time(self, seconds: int) -> None:
        """Seconds idle before the runner puts the app to sleep; -1 never."""
        if check_sleep_time(seconds) == -1 and self.sleep_time != -1:
            awake = self.owner.spaces.filter(sleep_time=-1).exclude(pk=self.pk).count()
            Quota.require(self.owner, "never_sleep", awake)
        Space.objects.filter(pk=self.pk).update(sleep_time=check_sleep_time(seconds))
        self.sleep_time = seconds
        notify.poke_on_commit()

    def set_visibility(self, visibility: str) -> None:
        """Public or private; the runner puts a private space's route behind the access check."""
        if visibility not in VISIBILITIES:
            raise ValueError("Visibility is public or private.")
        Space.objects.filter(pk=self.pk).update(visibility=visibility)
        self.visibility = visibility
        notify.poke_on_commit()

    def check_build_quota(self) -> None:
        """QuotaExceeded (429) when the owner already has their most builds queued or running;
        this space's own are not counted, since a new push cancels them."""
        active = Build.objects.filter(space__owner=self.owner_id, state__in=Build.ACTIVE).exclude(space=self)
        Quota.require(self.owner, "concurrent_builds", active.count(), status=429)

    def check_run_quota(self, memory_mb: int | None = None) -> None:
        """QuotaExceeded when running this space too would pass the owner's running spaces or their
        memory. Running: a deployed build, neither paused nor asleep. `memory_mb`: what this space
        would run with, when not what it has now (a change of hardware)."""
        running = (
            Space.objects.filter(owner=self.owner_id, deployed_build__isnull=False, paused=False)
            .exclude(stage__in=("SLEEPING", "PAUSED", "STOPPED"))
            .exclude(pk=self.pk)
            .select_related("hardware")
        )
        Quota.require(self.owner, "running_spaces", running.count())
        memory = sum(space.run_memory_mb() for space in running)
        Quota.require(self.owner, "running_memory_mb", memory, memory_mb or self.run_memory_mb())

    def run_memory_mb(self) -> int:
        """The memory a container of this space gets: an administrator's limit for this space, else
        its hardware flavour's (spacedock.hardware)."""
        if self.memory_limit_mb:
            return self.memory_limit_mb
        try:
            requested = self.hardware.requested
        except ObjectDoesNotExist:  # never asked for hardware: the default flavour
            requested = settings.HARDWARE_DEFAULT
        flavour = settings.HARDWARE.get(requested) or settings.HARDWARE[settings.HARDWARE_DEFAULT]
        return flavour.memory_mb

    def factory_rebuild(self) -> "Build | None":
        """Rebuilds the head from scratch, without the build cache."""
        if not self.head_sha:
            return None
        with transaction.atomic():
            space = Space.objects.select_for_update().get(pk=self.pk)
            ref = f"refs/heads/{DEFAULT_BRANCH}"
            build = space._queue_build(space.head_sha, ref, "superseded by a factory rebuild", no_cache=True)
        self.refresh_from_db()
        return build

    def own_builds(self) -> models.QuerySet:
        """The builds of the default branch, the space's own line (other branches' build previews)."""
        return self.builds.filter(ref=f"refs/heads/{DEFAULT_BRANCH}")

    def images_kept(self) -> set[str]:
        """The images of this space that must stay: the last SPACEDOCK_IMAGES_KEPT successful builds
        of its own line (for a rollback), what it serves, every pinned build (a paper embeds it for
        good), and what each of its deployments serves. A deleted branch's builds are in none."""
        own = self.own_builds().filter(state="succeeded").exclude(image="")
        keep = set(own.order_by("-finished").values_list("image", flat=True)[: settings.IMAGES_KEPT])
        if self.deployed_build_id:
            keep.add(Build.objects.get(pk=self.deployed_build_id).image)
        keep.update(self.builds.filter(pinned=True).exclude(image="").values_list("image", flat=True))
        keep.update(self.deployments.exclude(build=None).values_list("build__image", flat=True))
        return keep - {""}

    def request_prune(self) -> None:
        """Asks the worker to remove the images images_kept no longer names (by task name: the web
        never imports the builder)."""
        transaction.on_commit(lambda: celery_app.send_task(PRUNE_TASK, args=[self.pk]))

    def log_run(self, text: str) -> None:
        RunLogLine.append(self, text)

    def rollback(self, build: "Build", check_quota: bool = False) -> None:
        """Runs an earlier succeeded build's image again, with the same health-checked swap.

        ValueError when the build cannot run; with `check_quota` (a user's request, not an
        import), QuotaExceeded when running it would pass the owner's running quota.
        """
        if build.space_id != self.pk or build.state != "succeeded" or not build.image:
            raise ValueError(
                f"build {build.pk} is not a succeeded build of {self.full_name} (it is {build.state}):"
                " only a succeeded build can serve the space"
            )
        if check_quota:
            self.check_run_quota()
        Space.objects.filter(pk=self.pk).update(
            deployed_build=build, generation=models.F("generation") + 1, paused=False
        )
        self.refresh_from_db(fields=["deployed_build", "generation", "paused"])
        notify.poke_on_commit()

    def env(self) -> dict[str, str]:
        """The variables and secrets a container of this space gets, with the Hub's own."""
        env = {v.key: v.value for v in self.variables.all()}
        env.update(
            SPACE_ID=self.full_name,
            SPACE_AUTHOR_NAME=self.owner.username,
            SPACE_REPO_NAME=self.name,
            SPACE_TITLE=self.title or self.name,
            SPACE_HOST=self.host,
            SYSTEM="spaces",
        )
        # The Hub's OAuth variables, for every space: Gradio will not start an app with a
        # gr.LoginButton without them. Sign-in itself needs hf_oauth: true (accounts/oauth.py).
        config = self.deployed_build.space_config() if self.deployed_build_id else self.head_config()
        env.update(oauth.env(self, config))
        return env

    def like(self, user: User) -> bool:
        """True when this is a new like; liking twice counts once."""
        with transaction.atomic():
            _, created = Like.objects.get_or_create(user=user, space=self)
            if created:
                Space.objects.filter(pk=self.pk).update(
                    likes=models.F("likes") + 1,
                    trending_score=models.F("trending_score") + trending_points(LIKE_WEIGHT),
                )
        self.refresh_from_db(fields=["likes", "trending_score"])
        return created

    def unlike(self, user: User) -> bool:
        with transaction.atomic():
            deleted, _ = Like.objects.filter(user=user, space=self).delete()
            if deleted:
                Space.objects.filter(pk=self.pk).update(likes=models.F("likes") - 1)
        self.refresh_from_db(fields=["likes"])
        return bool(deleted)

    def failure_cause(self) -> Cause | None:
        """Why the app is not running, found in the stage's message or the failed build's log."""
        if not self.stage.endswith("ERROR") and not self.stage_message:
            return None
        text = self.stage_message
        build = self.own_builds().first()
        if self.stage == "BUILD_ERROR" and build is not None and build.state == "failed":
            tail = build.lines.order_by("-number").values_list("text", flat=True)[:400]
            text = "\n".join(reversed(list(tail))) + "\n" + text
        return find_cause(text)

    def first_visit(self, visitor: str) -> bool:
        """True once per visitor per space per VISIT_WINDOW: reloading a page (or an app's every
        asset and API call) must not climb the trending list. Remembered in Django's cache, which
        the web processes and the runner share; the key names this space row, not only its id,
        so a new database reusing ids starts with no memory."""
        digest = hashlib.sha256(visitor.encode()).hexdigest()[:24]
        key = f"visit:{self.pk}:{int(self.created.timestamp())}:{digest}"
        return cache.add(key, 1, timeout=VISIT_WINDOW)

    def record_visit(self, visitor: str) -> bool:
        """Counts the visitor's visit in `visits` and the trending score, unless already counted."""
        if not self.first_visit(visitor):
            return False
        self.count_visits(1)
        return True

    def count_visits(self, visits: int) -> None:
        Space.objects.filter(pk=self.pk).update(
            visits=models.F("visits") + visits,
            trending_score=models.F("trending_score") + trending_points(VISIT_WEIGHT * visits),
        )

    def set_variable(self, key: str, value: str, *, secret: bool = False, description: str = "") -> None:
        """Adds or replaces a variable or secret; the container restarts with it, as on the Hub."""
        key = check_variable_key(key.strip())
        Variable.objects.update_or_create(
            space=self,
            key=key,
            defaults={
                "value": value,
                "is_secret": secret,
                "description": description,
                "updated": timezone.now(),
            },
        )
        self.request_restart()

    def delete_variable(self, key: str, *, secret: bool = False) -> bool:
        deleted, _ = self.variables.filter(key=key, is_secret=secret).delete()
        if deleted:
            self.request_restart()
        return bool(deleted)

    def duplicate(
        self, to_owner: User, name: str, *, private: bool | None = None, secrets: dict | None = None
    ) -> "Space":
        """A copy with the whole git history and the public variables; secrets only those given,
        as the Hub does: a secret's value never travels to someone else's space."""
        if not valid_name(name):
            raise ValueError(f"{name!r} is not a valid space name")
        for key in secrets or {}:
            check_variable_key(key)
        visibility = self.visibility if private is None else ("private" if private else "public")
        copy = Space.create(to_owner, name, visibility=visibility, sleep_time=self.sleep_time)
        try:
            if self.head_sha:
                subprocess.run(
                    ["git", "--git-dir", str(self.repo_path), "push", "--quiet", str(copy.repo_path),
                     "refs/heads/*:refs/heads/*"],
                    check=True, capture_output=True,
                )  # fmt: skip
            LfsObject.copy_references(self, copy)
            for var in self.variables.filter(is_secret=False):
                Variable.objects.create(space=copy, key=var.key, value=var.value, description=var.description)
            for key, value in (secrets or {}).items():
                Variable.objects.create(space=copy, key=key, value=value, is_secret=True)
        except BaseException:
            copy.delete()
            raise
        if self.head_sha:
            copy.record_push(self.head_sha, f"refs/heads/{DEFAULT_BRANCH}")
        return copy

    def delete(self, *args, **kwargs):
        """Deletes the row and the bare repository; the runner stops the containers it finds orphaned."""
        path = self.repo_path
        result = super().delete(*args, **kwargs)
        shutil.rmtree(path, ignore_errors=True)
        notify.poke_on_commit()
        return result

    def record_push(self, sha: str, ref: str) -> "Build":
        """A new head of a branch: check its config and queue its build. The default branch's is
        the space's own; another branch's builds its preview (Deployment), and the space's card,
        head and deployed build stay as they are."""
        if ref != f"refs/heads/{DEFAULT_BRANCH}":
            return Deployment.preview_pushed(self, ref.removeprefix("refs/heads/"), sha)
        with transaction.atomic():
            space = Space.objects.select_for_update().get(pk=self.pk)
            webhooks.pushed(space, ref, space.head_sha, sha)
            space.head_sha = sha
            space.updated = timezone.now()
            build = space._queue_build(sha, ref, f"superseded by {sha[:7]}")
        self.refresh_from_db()
        return build

    def check_commit(self, sha: str) -> tuple[spaceconfig.SpaceConfig | None, object, str]:
        """The commit's config, and when it cannot be built, the stages function that says so and why."""
        try:
            config = self.read_config(sha)
        except spaceconfig.ConfigError as exc:
            return None, stages.config_error, str(exc)
        needed = spaceconfig.required_file(config)
        if needed and not gitrepo.has_file(self.repo_path, sha, needed):
            error = (
                f"{needed} is not in commit {sha[:7]}. Add it, or point app_file in "
                "README.md at the file that starts your app."
                if config.sdk != "docker"
                else f"sdk: docker needs a Dockerfile at the top of the repository "
                f"(commit {sha[:7]} has none)."
            )
            return config, stages.no_app_file, error
        return config, None, ""

    def _queue_build(self, sha: str, ref: str, superseded: str, no_cache: bool = False) -> "Build":
        """Reads the commit's README once, into the build it queues (the row is locked by the caller)."""
        config, refused, error = self.check_commit(sha)
        if config is not None:
            self.apply_config(config)
        self.save(update_fields=[*self.HEAD_FIELDS, "head_sha", "updated"])
        stages.cancel_builds(self, superseded, ref)
        build = Build.objects.create(
            space=self, commit_sha=sha, ref=ref, no_cache=no_cache, config=config.as_dict() if config else {}
        )
        if refused is not None:
            refused(build, error)
        else:
            stages.build_queued(self)
            build.dispatch()
        return build


class Build(models.Model):
    ACTIVE = stages.ACTIVE_BUILD_STATES

    space = models.ForeignKey(Space, models.CASCADE, related_name="builds")
    commit_sha = models.CharField(max_length=40)
    ref = models.CharField(max_length=200, default=f"refs/heads/{DEFAULT_BRANCH}")
    # Moves only through spaces/stages.py.
    state = models.CharField(max_length=12, choices=BuildState.choices, default=BuildState.QUEUED)
    # The commit's README front matter, read once at the push (SpaceConfig.as_dict()): the builder
    # builds with it and the runner runs with it, whatever was pushed later. Empty on a build made
    # without a push; space_config() reads its commit then.
    config = models.JSONField(default=dict, blank=True)
    no_cache = models.BooleanField(default=False)
    image = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)  # the worker is alive
    # A paper embeds this build for good: its image is kept and served at pinned_host.
    pinned = models.BooleanField(default=False)
    # What the live app showed once it first answered (builder.tasks.capture_live_app): when the
    # gallery's screenshot was taken, and the script of Gradio's <gradio-app> web component
    # ("assets/index-<hash>.js", served by the app itself, so an embed needs no CDN).
    thumbnail_taken = models.DateTimeField(null=True, blank=True)
    web_component_js = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["state", "started"])]

    def __str__(self) -> str:
        return f"{self.space} @ {self.commit_sha[:7]} ({self.state})"

    def dispatch(self) -> None:
        # By name: the web never imports the builder; the worker that serves the task does. The
        # queue is the space's node label's where a worker takes it (spacedock/buildqueues.py).
        def send() -> None:
            queue = buildqueues.queue_for(self.space)
            celery_app.send_task(BUILD_TASK, args=[self.pk], queue=queue)
            buildqueues.sent(self.pk, queue)

        transaction.on_commit(send)

    def request_capture(self) -> None:
        """Once a public build answers at its URL: the gallery's picture and the web component's
        script, each until it has been had once."""
        if self.space.is_private:
            return
        wanted_picture = self.thumbnail_taken is None and thumbnails.enabled()
        wanted_script = not self.web_component_js and self.space_config().sdk == "gradio"
        if wanted_picture or wanted_script:
            args = [self.pk, wanted_picture]
            transaction.on_commit(lambda: celery_app.send_task(CAPTURE_TASK, args=args))

    @property
    def duration(self) -> float | None:
        if self.started and self.finished:
            return (self.finished - self.started).total_seconds()
        return None

    def space_config(self) -> spaceconfig.SpaceConfig:
        """The config this build is built and run with."""
        if self.config:
            return spaceconfig.SpaceConfig.from_dict(self.config)
        # A build made without a push (by hand): its commit's README, else what the head says.
        try:
            return self.space.read_config(self.commit_sha)
        except (spaceconfig.ConfigError, OSError):
            return self.space.head_config()

    def response_headers(self) -> dict[str, str]:
        """What the app's host adds to every response while this build serves it (Caddy sets them,
        over the app's own): the front matter's custom_headers, and with disable_embedding a CSP
        that lets only the platform's own pages frame the app (browsers then refuse other pages'
        iframes, not only Spacedock's embed page)."""
        config = self.space_config()
        headers = dict(config.custom_headers)
        if config.disable_embedding:
            headers["content-security-policy"] = f"frame-ancestors {site_origin()}"
        return headers

    def start(self) -> bool:
        """queued -> building; False when the build was cancelled before a worker took it."""
        return stages.build_started(self)

    def succeed(self, image: str) -> None:
        """building -> succeeded, and the image becomes what the runner should run."""
        if stages.build_succeeded(self, image):
            notify.poke_on_commit()  # the runner deploys it now, not at its next pass

    def fail(self, error: str) -> None:
        """queued or building -> failed; the space says why, with what to do about it."""
        stages.build_failed(self, error)

    def pin(self) -> None:
        """Keeps this build's image and serves it at its own address, whatever is pushed later."""
        if self.state != BuildState.SUCCEEDED:
            raise ValueError(f"only a succeeded build can be pinned; this one is {self.state}")
        if not self.pinned:
            owner = self.space.owner
            Quota.require(
                owner, "pinned_builds", Build.objects.filter(space__owner=owner, pinned=True).count()
            )
        with transaction.atomic():
            Build.objects.filter(pk=self.pk).update(pinned=True)
            self.pinned = True
            Deployment.of_pin(self)

    def unpin(self) -> None:
        """Its image goes with the next prune, unless the space still runs it or keeps it as recent;
        its deployment goes now (the runner stops its container)."""
        with transaction.atomic():
            Build.objects.filter(pk=self.pk).update(pinned=False)
            self.pinned = False
            Deployment.objects.filter(kind=Deployment.PIN, label=f"pin--{self.pk}").delete()
        notify.poke_on_commit()

    @property
    def pinned_host(self) -> str:
        # "--" never occurs in a space's subdomain (make_subdomain collapses dashes): no clash.
        return f"pin--{self.pk}.{settings.SPACES_DOMAIN}"

    @property
    def pinned_url(self) -> str:
        return f"{settings.SCHEME}://{self.pinned_host}{settings.PORT_SUFFIX}/"

    @property
    def on_default_branch(self) -> bool:
        """A build of the space's own line: its success is what the space serves."""
        return self.ref == f"refs/heads/{DEFAULT_BRANCH}"

    def preview(self) -> "Deployment | None":
        """The preview a build of another branch is for; None on the default branch, or once the
        branch is deleted."""
        if self.on_default_branch or not self.ref.startswith("refs/heads/"):
            return None
        branch = self.ref.removeprefix("refs/heads/")
        return Deployment.objects.filter(
            space_id=self.space_id, kind=Deployment.PREVIEW, branch=branch
        ).first()

    def is_cancelled(self) -> bool:
        return Build.objects.filter(pk=self.pk, state=BuildState.CANCELLED).exists()

    def log_lines(self, offset: int = 0):
        return self.lines.filter(number__gte=offset).order_by("number")


def branch_label(branch: str) -> str:
    """A branch name as a DNS label, the way make_subdomain turns a space's name into one: lower
    case, other characters "-", no "--" (which separates it from the space's subdomain)."""
    label = re.sub(r"[^a-z0-9-]+", "-", branch.lower())
    return re.sub(r"-{2,}", "-", label).strip("-")


# DNS's limit for one label. A space whose subdomain is longer than 54 characters gets preview labels
# past it (the column allows them); browsers and curl still resolve them under localhost.
MAX_LABEL = 63


class Deployment(models.Model):
    """A build served at a host of its own, beside the space's: a pinned build at
    `pin--<build id>.<SPACES_DOMAIN>`, or a branch's preview at `<subdomain>--<branch>.<SPACES_DOMAIN>`.

    Desired state is `build` (what should serve here; a preview's moves with each successful
    build of its branch) and the row itself (deleting it, by an unpin or a deleted branch, asks
    the runner to stop what serves it). Actual state (`container_id`, `port`, `running_image`,
    `last_request_at`) is the runner's; the stage moves only through spaces/stages.py, with the
    space's own transitions. The space's own deployment stays on the Space row.
    """

    PIN, PREVIEW = "pin", "preview"

    space = models.ForeignKey(Space, models.CASCADE, related_name="deployments")
    kind = models.CharField(max_length=8)  # PIN or PREVIEW
    branch = models.CharField(max_length=255, blank=True)  # a preview's branch
    # The host's first label, fixed when the row is made: "pin--<id>" or "<subdomain>--<branch label>".
    label = models.CharField(max_length=100, unique=True)
    build = models.ForeignKey(Build, models.SET_NULL, null=True, blank=True, related_name="deployments")
    created = models.DateTimeField(default=timezone.now)

    # Runtime state, which the runner owns; the stage moves only through spaces/stages.py. A pin
    # starts asleep: it costs nothing until someone visits it.
    stage = models.CharField(max_length=24, choices=Stage.choices, default=Stage.NO_APP_FILE)
    stage_message = models.TextField(blank=True)
    running_image = models.CharField(max_length=200, blank=True)
    container_id = models.CharField(max_length=80, blank=True)
    port = models.IntegerField(null=True, blank=True)
    address = models.CharField(max_length=100, blank=True)  # where Caddy dials `port`, as Runtime.address
    last_request_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["kind", "branch", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["space", "branch"], condition=models.Q(kind="preview"), name="one_preview_per_branch"
            ),
            models.UniqueConstraint(
                fields=["build"], condition=models.Q(kind="pin"), name="one_pin_per_build"
            ),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def host(self) -> str:
        return f"{self.label}.{settings.SPACES_DOMAIN}"

    @property
    def url(self) -> str:
        return f"{settings.SCHEME}://{self.host}{settings.PORT_SUFFIX}/"

    def run_config(self) -> spaceconfig.SpaceConfig:
        """Its build's own config (port, startup timeout, sdk), as a space runs its deployed build's."""
        return self.build.space_config()

    def env(self) -> dict[str, str]:
        """The space's variables and secrets, with SPACE_HOST naming this deployment's own host."""
        return {**self.space.env(), "SPACE_HOST": self.host}

    @classmethod
    def of_pin(cls, build: Build) -> "Deployment":
        """The pinned build's deployment, made (asleep) when missing: pins made before deployments
        existed, or brought by import_build, get theirs at their first visit."""
        deployment, _ = cls.objects.get_or_create(
            kind=cls.PIN,
            build=build,
            defaults={"space_id": build.space_id, "label": f"pin--{build.pk}", "stage": Stage.SLEEPING},
        )
        return deployment

    @classmethod
    def preview_label(cls, space: Space, branch: str) -> str:
        """`<subdomain>--<branch label>`, unique: a branch whose label another branch of the space
        already has (`Feature/X` beside `feature-x`), or that is too long, ends in 6 hex of its name."""
        base = branch_label(branch) or "branch"
        digest = hashlib.sha256(branch.encode()).hexdigest()[:6]
        room = MAX_LABEL - len(space.subdomain) - 2
        label = f"{space.subdomain}--{base}"
        if len(base) > room or cls.objects.filter(label=label).exists():
            short = base[: max(room - 7, 0)].strip("-")
            label = f"{space.subdomain}--{short}-{digest}" if short else f"{space.subdomain}--{digest}"
        return label

    @classmethod
    def preview_pushed(cls, space: Space, branch: str, sha: str) -> Build:
        """A new head of a branch other than the default: its preview (made at the first push) gets a
        build, checked as a push to the default branch is, without touching the space's own."""
        with transaction.atomic():
            locked = Space.objects.select_for_update().get(pk=space.pk)
            preview = cls.objects.filter(space=locked, kind=cls.PREVIEW, branch=branch).first()
            if preview is None:
                preview = cls.objects.create(
                    space=locked, kind=cls.PREVIEW, branch=branch, label=cls.preview_label(locked, branch)
                )
            ref = f"refs/heads/{branch}"
            stages.cancel_builds(locked, f"superseded by {sha[:7]}", ref)
            config, refused, error = locked.check_commit(sha)
            build = Build.objects.create(
                space=locked, commit_sha=sha, ref=ref, config=config.as_dict() if config else {}
            )
            if refused is not None:
                refused(build, error)
            else:
                stages.build_queued(preview)
                build.dispatch()
        return build

    @classmethod
    def branch_deleted(cls, space: Space, branch: str) -> bool:
        """The branch is gone: its builds stop, its preview goes (the runner stops its container),
        and its images are pruned. False when the branch had no preview."""
        with transaction.atomic():
            Space.objects.select_for_update().filter(pk=space.pk).exists()
            stages.cancel_builds(space, f"the branch {branch} was deleted", f"refs/heads/{branch}")
            deleted, _ = cls.objects.filter(space=space, kind=cls.PREVIEW, branch=branch).delete()
            if deleted:
                space.request_prune()
        notify.poke_on_commit()
        return bool(deleted)


def cut_line(text: str) -> str:
    """A log line at most LOG_LINE_MAX characters long, saying how much was cut."""
    limit = settings.LOG_LINE_MAX
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters cut]"


class LogLine(models.Model):
    number = models.IntegerField()
    time = models.DateTimeField(default=timezone.now)
    text = models.TextField()

    class Meta:
        abstract = True


class BuildLogLine(LogLine):
    build = models.ForeignKey(Build, models.CASCADE, related_name="lines")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["build", "number"], name="unique_build_log_line")]

    @classmethod
    def append(cls, build: Build, text: str) -> None:
        # Only the build's own worker writes its log, so the next number is safe to count.
        last = cls.objects.filter(build=build).aggregate(n=models.Max("number"))["n"]
        cls.objects.create(build=build, number=0 if last is None else last + 1, text=cut_line(text))

    @classmethod
    def prune(cls, builds_kept: int) -> int:
        """Deletes the logs of each space's builds older than its last `builds_kept`, keeping the
        deployed and pinned builds' logs; returns the lines deleted."""
        deleted = 0
        for space in Space.objects.only("pk", "deployed_build_id"):
            old = (
                Build.objects.filter(space=space, pinned=False)
                .exclude(pk=space.deployed_build_id)
                .order_by("-created", "-pk")
                .values_list("pk", flat=True)[builds_kept:]
            )
            deleted += cls.objects.filter(build_id__in=list(old)).delete()[0]
        return deleted


class RunLogLine(LogLine):
    space = models.ForeignKey(Space, models.CASCADE, related_name="run_lines")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["space", "number"], name="unique_run_log_line")]

    @classmethod
    def append(cls, space: Space, text: str) -> None:
        text = cut_line(cls.redact(space, text))
        # One runner owns a space at a time (its claim), but its log followers are threads: retry a clash.
        for _ in range(5):
            last = cls.objects.filter(space=space).aggregate(n=models.Max("number"))["n"]
            try:
                with transaction.atomic():
                    cls.objects.create(space=space, number=0 if last is None else last + 1, text=text)
                return
            except IntegrityError:
                continue

    @staticmethod
    def redact(space: Space, text: str) -> str:
        """The line with the space's secret values written as ***: an app that prints its
        environment must not publish it in a log anyone who can read the space sees."""
        values = [*Variable.objects.filter(space=space, is_secret=True).values_list("value", flat=True),
                  oauth.client_secret(space)]  # fmt: skip
        for value in sorted((v for v in values if len(v) >= 4), key=len, reverse=True):
            text = text.replace(value, "***")
        return text

    @classmethod
    def prune(cls, lines_kept: int) -> int:
        """Keeps the last `lines_kept` lines of each space's run log; returns the lines deleted."""
        deleted = 0
        for space_id, last in cls.objects.values_list("space").annotate(n=models.Max("number")):
            deleted += cls.objects.filter(space_id=space_id, number__lte=last - lines_kept).delete()[0]
        return deleted


class Variable(models.Model):
    """A space's environment variable; a secret's value never leaves the server once set."""

    space = models.ForeignKey(Space, models.CASCADE, related_name="variables")
    key = models.CharField(max_length=100)
    value = models.TextField(blank=True)
    description = models.CharField(max_length=200, blank=True)
    is_secret = models.BooleanField(default=False)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["space", "key"], name="unique_variable_per_space"),
            models.CheckConstraint(
                condition=models.Q(key__regex=ENV_KEY_PATTERN) & ~models.Q(key__in=sorted(RESERVED_ENV)),
                name="variable_key_is_env_name",
            ),
        ]


class Like(models.Model):
    user = models.ForeignKey(User, models.CASCADE)
    space = models.ForeignKey(Space, models.CASCADE, related_name="like_set")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "space"], name="unique_like")]


class Webhook(models.Model):
    """An owner's URL that gets a signed POST on the space's events (spaces/webhooks.py)."""

    space = models.ForeignKey(Space, models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500)
    # Signs each body (X-Webhook-Signature); shown to the owner on the settings page.
    secret = models.CharField(max_length=64)
    events = models.JSONField(default=list)  # any of webhooks.EVENTS
    active = models.BooleanField(default=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created"]

    def __str__(self) -> str:
        return f"{self.space} -> {self.url}"

    @classmethod
    def add(cls, space: Space, url: str, events: list[str]) -> "Webhook":
        """Checks the URL (a public address) and the events; ValueError says what is wrong."""
        from spacedock.spaces import webhooks

        url = url.strip()
        if len(url) > 500:
            raise ValueError("A webhook URL has at most 500 characters.")
        webhooks.resolve(url)
        events = [e for e in webhooks.EVENTS if e in events]
        if not events:
            raise ValueError(f"Pick at least one event: {', '.join(webhooks.EVENTS)}.")
        if space.webhooks.count() >= settings.WEBHOOKS_PER_SPACE:
            raise ValueError(f"A space has at most {settings.WEBHOOKS_PER_SPACE} webhooks.")
        return cls.objects.create(space=space, url=url, events=events, secret=secrets.token_hex(32))


class WebhookDelivery(models.Model):
    """One event for one webhook, and what sending it gave: the delivery log."""

    STATES = ("pending", "delivered", "failed")

    webhook = models.ForeignKey(Webhook, models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=10)
    payload = models.JSONField()
    state = models.CharField(max_length=10, default="pending")
    attempts = models.IntegerField(default=0)
    status_code = models.IntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["webhook", "-created"], name="webhook_delivery_recent")]

    def attempt(self) -> int | None:
        """Sends once; returns the seconds to wait before the next try, or None when done."""
        from spacedock.spaces import webhooks

        body = webhooks.body_of(self.payload)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Spacedock-Webhooks/1",
            "X-Webhook-Event": self.event,
            "X-Webhook-Delivery": str(self.pk),
            "X-Webhook-Signature": webhooks.sign(self.webhook.secret, body),
        }
        self.attempts += 1
        try:
            self.status_code = webhooks.post(self.webhook.url, body, headers)
            self.error = "" if 200 <= self.status_code < 300 else f"answered {self.status_code}"
        except webhooks.WebhookRefused as exc:
            self.status_code, self.error = None, str(exc)[:300]
            self.attempts = settings.WEBHOOK_ATTEMPTS  # an address refused now is refused later too
        except OSError as exc:
            self.status_code, self.error = None, f"{type(exc).__name__}: {exc}"[:300]
        done = not self.error
        if done:
            self.state = "delivered"
        elif self.attempts >= settings.WEBHOOK_ATTEMPTS:
            self.state = "failed"
        self.updated = timezone.now()
        self.save(update_fields=["attempts", "status_code", "error", "state", "updated"])
        return None if self.state != "pending" else 10 * 4 ** (self.attempts - 1)  # 10 s, 40 s, 160 s, ...
