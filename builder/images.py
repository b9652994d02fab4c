"""From an exported commit to a tagged image: the shared SDK image first, then the space's own."""

import fcntl
import hashlib
import hmac
import platform
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from celery import shared_task
from django.conf import settings

from builder import docker_build, dockerfiles, source
from builder.buildlog import BuildLog
from spacedock.accounts.models import Quota, QuotaExceeded
from spacedock.gitserver import repo as gitrepo
from spacedock.labels import (
    LABEL_BUILD,
    LABEL_COMMIT,
    LABEL_INSTANCE,
    LABEL_POOL,
    LABEL_SDK,
    LABEL_SPACE,
    LABEL_WARM,
)
from spacedock.spaces.models import Build, Space


def base_image(python_version: str) -> str:
    """The base image with the interpreter front matter asked for (checked at the push)."""
    return settings.PYTHON_IMAGES.get(python_version or settings.BASE_PYTHON, settings.BASE_IMAGE)


def image_tag(space: Space, sha: str) -> str:
    """Where a build's image goes in the registry; Build.image holds it by digest."""
    return f"{settings.REGISTRY}/{settings.INSTANCE}/{space.subdomain}:{sha[:12]}"


def sdk_image_tag(gradio_version: str, base: str | None = None) -> str:
    # Named by what goes into it: a rebuilt (or another Python's) base image or a changed recipe
    # (Dockerfile or the scripts it runs) gets a fresh one.
    base = base or settings.BASE_IMAGE
    recipe = hashlib.sha256(docker_build.image_id(base).encode())
    for name, text in sorted(dockerfiles.sdk_context(base, gradio_version).items()):
        recipe.update(f"\0{name}\0{text}".encode())
    return f"spacedock-sdk:gradio{gradio_version}-{recipe.hexdigest()[:12]}"


# BuildKit keys every cache mount of a build by this namespace; a build cannot name another's.
CACHE_NAMESPACE_ARG = "BUILDKIT_CACHE_MOUNT_NS"


def cache_namespace(owner: str) -> str:
    """The cache namespace of a space (or of the shared SDK image): unguessable, so that not even a
    Dockerfile frontend of a tenant's choosing, which sees only its own, can name another's."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"build-cache:{owner}".encode(), hashlib.sha256)
    return f"{owner}-{digest.hexdigest()[:24]}"


def without_credentials(url: str) -> str:
    """The URL without its user and password (`https://user:token@host/simple` -> `https://host/simple`)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc)) if parts.netloc else url


def pip_secrets(workdir: Path, index: str = "full") -> dict[str, Path]:
    """The CA bundle (public) and a pip.conf naming the operator's index: "full" for the SDK image
    (Spacedock's own recipe, no tenant code), "public" (without credentials) for a space's build,
    whose requirements may name a source distribution whose setup.py reads /etc/pip.conf, "none"
    for a tenant's own Dockerfile."""
    secrets = {}
    ca = Path(settings.BUILD_CA_BUNDLE)
    if ca.is_file():
        secrets["ca"] = ca
    if index != "none" and (settings.PIP_INDEX_URL or settings.PIP_EXTRA_INDEX_URL):
        keep = index == "full" or settings.PIP_CREDENTIALS_IN_SPACE_BUILDS
        url = (lambda u: u) if keep else without_credentials
        conf = workdir / f"pip-{index}.conf"
        lines = ["[global]"]
        if settings.PIP_INDEX_URL:
            lines.append(f"index-url = {url(settings.PIP_INDEX_URL)}")
        if settings.PIP_EXTRA_INDEX_URL:
            lines.append(f"extra-index-url = {url(settings.PIP_EXTRA_INDEX_URL)}")
        conf.write_text("\n".join(lines) + "\n")
        conf.chmod(0o600)
        secrets["pipconf"] = conf
    return secrets


def require_base_image(base: str) -> None:
    if not docker_build.image_exists(base):
        raise docker_build.BuildError(
            f"The base image {base} is missing on this Docker engine. "
            "The operator builds it with deploy/base-image.sh (make up does it), "
            "or sets SPACEDOCK_BASE_IMAGE (SPACEDOCK_PYTHON_IMAGES for other Pythons)."
        )


def ensure_sdk_image(
    version: str, workdir: Path, buildlog: BuildLog, deadline: float, should_stop, base: str | None = None
) -> str:
    """The shared image with Gradio installed, built once per version and base image, for every space."""
    base = base or settings.BASE_IMAGE
    require_base_image(base)
    tag = sdk_image_tag(version, base)
    if docker_build.image_exists(tag):
        buildlog.write(f"==> Reusing the shared Gradio {version} image {tag}")
        return tag
    lock_dir = Path(settings.DATA_DIR) / "locks"
    lock_dir.mkdir(exist_ok=True)
    # Two builds that need the same new Gradio version build it once.
    with open(lock_dir / f"sdk-{version}-{hashlib.sha256(base.encode()).hexdigest()[:8]}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if docker_build.image_exists(tag):
            buildlog.write(f"==> Reusing the shared Gradio {version} image {tag}")
            return tag
        buildlog.write(f"==> Building the shared Gradio {version} image {tag} (once; later spaces reuse it)")
        context = workdir / "sdk"
        context.mkdir()
        for name, text in dockerfiles.sdk_context(base, version).items():
            (context / name).write_text(text)
        try:
            docker_build.build(
                context,
                context / "Dockerfile",
                tag,
                labels={LABEL_SDK: f"gradio-{version}"},
                secrets=pip_secrets(workdir, index="full"),
                build_args={CACHE_NAMESPACE_ARG: cache_namespace("sdk")},
                deadline=deadline,
                on_line=buildlog.write,
                should_stop=should_stop,
            )
        except docker_build.BuildStopped:
            raise
        except docker_build.BuildError as exc:
            raise docker_build.BuildError(
                f"Gradio {version} could not be installed. Check sdk_version in README.md.\n{exc}",
                exc.log_tail,
            ) from None
    return tag


def pool_image_tag(sdk_tag: str) -> str:
    return f"{settings.REGISTRY}/{settings.INSTANCE}/spacedock-pool:{sdk_tag.partition(':')[2]}"


def ensure_pool_image(sdk_tag: str, workdir: Path, buildlog: BuildLog, deadline: float, should_stop) -> str:
    """The SDK image as this instance's runtime engine has it, by digest: what the warm pool's
    containers run (runner/pool.py). The SDK image itself stays on the build engine, shared by every
    instance; this copy adds only this instance's label (no layer), which lets the worker push it
    to the registry, and it is published once per SDK image. "" when it cannot be: the space then
    starts cold, as without the pool."""
    tag = pool_image_tag(sdk_tag)
    try:
        found = docker_build.runtime_digest(tag)
        if found:
            return found
        buildlog.write(f"==> Publishing the warm pool's image {tag} (once)")
        context = workdir / "pool"
        context.mkdir()
        (context / "Dockerfile").write_text(f"FROM {sdk_tag}\n")
        built = f"{tag}-{uuid.uuid4().hex[:16]}"
        docker_build.build(
            context, context / "Dockerfile", built, labels={LABEL_INSTANCE: settings.INSTANCE},
            build_args={}, secrets={}, deadline=deadline, on_line=lambda line: None, should_stop=should_stop,
        )  # fmt: skip
        return docker_build.publish(built, tag)
    except docker_build.BuildStopped:
        raise
    except docker_build.BuildError as exc:
        buildlog.write(f"==> Note: the warm pool's image could not be published ({exc}); it starts cold")
        return ""


def check_sdk_quota(space: Space, version: str) -> None:
    """BuildError when one more Gradio version would pass the owner's quota: each version is a
    shared SDK image of its own (hundreds of MB) that someone has to build and keep."""
    used = set(
        Space.objects.filter(owner=space.owner_id, sdk="gradio")
        .exclude(pk=space.pk)
        .exclude(sdk_version="")
        .values_list("sdk_version", flat=True)
    )
    if version not in used:
        try:
            Quota.require(space.owner, "sdk_versions", len(used))
        except QuotaExceeded as exc:
            raise docker_build.BuildError(
                f"{exc} Your spaces use Gradio {', '.join(sorted(used))}: pick one of them as sdk_version."
            ) from None


def build_space_image(build: Build, workdir: Path, buildlog: BuildLog, deadline: float) -> str:
    space = build.space
    sha = build.commit_sha

    def should_stop() -> str | None:
        buildlog.tick()
        return "cancelled by a newer push" if buildlog.cancelled() else None

    buildlog.write(f"==> Building {space.full_name} at {sha[:7]}")
    context = workdir / "src"
    context.mkdir()
    try:
        warnings = source.export_commit(build, context, workdir, buildlog, deadline)
    except gitrepo.TooLarge as exc:
        raise docker_build.BuildError(str(exc)) from None
    for warning in warnings:
        buildlog.write(f"==> Warning: {warning}")
    config = build.space_config()  # read from README.md once, at the push
    base = base_image(config.python_version)
    buildlog.write(f"==> Python {config.python_version or settings.BASE_PYTHON} ({base})")

    files = {p.name for p in context.iterdir() if p.is_file()}
    labels = {
        LABEL_INSTANCE: settings.INSTANCE,
        LABEL_SPACE: str(space.pk),
        LABEL_BUILD: str(build.pk),
        LABEL_COMMIT: sha,
        # Set on every image, "" unless ensure_pool_image says otherwise: a label is inherited,
        # and an sdk: docker image FROM an adoptable one is no such image.
        LABEL_POOL: "",
        LABEL_WARM: "",  # only a warm pool container carries one (spacedock/labels.py)
    }
    # A tenant's own Dockerfile gets only the CA bundle; a space's requirements the index without
    # its credentials (a requirement's setup.py runs while /etc/pip.conf is mounted).
    secrets = pip_secrets(workdir, index="none" if config.sdk == "docker" else "public")
    build_args: dict[str, str] = {}
    hub_env = {k: v for k, v in space.env().items() if k.startswith("SPACE_") or k == "SYSTEM"}
    if config.sdk == "gradio":
        check_sdk_quota(space, config.sdk_version)
        sdk_image = ensure_sdk_image(config.sdk_version, workdir, buildlog, deadline, should_stop, base)
        # A fact of the image whether or not the pool is on now: turned on later, it runs this build.
        if dockerfiles.adoptable(config, files):
            labels[LABEL_POOL] = ensure_pool_image(sdk_image, workdir, buildlog, deadline, should_stop)
        dockerfile = workdir / "Dockerfile"
        dockerfile.write_text(dockerfiles.gradio_dockerfile(sdk_image, config, files, hub_env))
    elif config.sdk == "static":
        dockerfile = workdir / "Dockerfile"
        require_base_image(base)
        dockerfile.write_text(dockerfiles.static_dockerfile(base, config))
    else:
        dockerfile = context / "Dockerfile"
        # The Hub hands variables to docker builds as build args and secrets as secret mounts.
        secrets_dir = workdir / "secrets"
        secrets_dir.mkdir(mode=0o700)
        for number, variable in enumerate(space.variables.all()):
            if variable.is_secret:
                # Named by position, never by the user's key: a key is no path.
                path = secrets_dir / f"secret-{number}"
                path.write_text(variable.value)
                secrets[variable.key] = path
                if len(variable.value) >= 4:
                    buildlog.secrets.append(variable.value)
            elif variable.key.startswith("BUILDKIT_"):
                # These steer BuildKit itself (its frontend, the cache namespace): not the tenant's.
                buildlog.write(f"==> Note: the variable {variable.key} is not passed to the build")
            else:
                build_args[variable.key] = variable.value
        build_args.update(hub_env)
    # The creation time too: a database restored or reset (the suite's, each run) hands out the same
    # ids again, and with the same secret key a new space would see an old one's cache.
    build_args[CACHE_NAMESPACE_ARG] = cache_namespace(f"space-{space.pk}-{space.created:%Y%m%d%H%M%S%f}")

    buildlog.write(f"==> docker build ({config.sdk} sdk, on {platform.machine()})")
    tag = image_tag(space, sha)
    built = f"{tag}-{uuid.uuid4().hex[:16]}"
    docker_build.build(
        context,
        dockerfile,
        built,
        labels=labels,
        secrets=secrets,
        build_args=build_args,
        no_cache=build.no_cache,
        deadline=deadline,
        on_line=buildlog.write,
        should_stop=should_stop,
    )
    buildlog.write(f"==> Publishing to the registry {settings.REGISTRY}")
    return docker_build.publish(built, tag)


def prune_images(space: Space) -> list[str]:
    """Removes a space's images that Space.images_kept does not name, from the runtime engine and
    from the registry."""
    space.refresh_from_db()
    keep = space.images_kept()
    removed = []
    for ref in docker_build.space_images(space.pk):
        if ref not in keep and docker_build.remove_image(ref):
            docker_build.unpublish(ref)
            removed.append(ref)
    docker_build.prune_dangling()
    return removed


@shared_task(name="builder.images.prune_space_images", bind=True, max_retries=24)
def prune_space_images(task, space_id: int) -> list[str]:
    """A deleted branch's (or unpinned build's) images go once nothing runs them: the runner
    stops the preview's container on its next pass, so an image still in use is tried again."""
    space = Space.objects.filter(pk=space_id).first()
    if space is None:
        return []
    try:
        removed = prune_images(space)
    except docker_build.BuildError as exc:
        raise task.retry(countdown=5, exc=exc) from None
    keep = space.images_kept()
    if any(ref not in keep for ref in docker_build.space_images(space_id)):
        raise task.retry(countdown=5)
    return removed
