"""The one reading of a Host header under SPACES_DOMAIN: which space, pinned build or preview it names.

    <subdomain>.<SPACES_DOMAIN>           a space (Space.subdomain)
    pin--<build id>.<SPACES_DOMAIN>       a pinned build (Build.pinned_host), its Deployment
    <subdomain>--<branch>.<SPACES_DOMAIN> a branch's preview (Deployment.label)

make_subdomain and branch_label never put "--" in a label of their own, so the first "--" splits
a space's subdomain from what follows, and no space is called "pin": none of the three clash.
"""

import re
from dataclasses import dataclass

from django.conf import settings

from spacedock.spaces.models import Build, Deployment, Space

PIN_PREFIX = "pin--"
PIN_RE = re.compile(rf"{PIN_PREFIX}([0-9]{{1,18}})")
PREVIEW_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*--[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True)
class HostName:
    """What a host names, read from the text alone: a space's subdomain, a pinned build's id, or a
    preview's label (`<subdomain>--<branch>`; its `subdomain` stays empty, so that what counts a
    space's requests never counts a preview's as the space's)."""

    subdomain: str = ""
    build_id: int | None = None
    preview: str = ""


@dataclass(frozen=True)
class HostTarget:
    space: Space
    build: Build | None = None  # the build a pin or preview host serves; None for the space's own host
    deployment: Deployment | None = None  # the pin's or preview's own deployment


def parse(host: str) -> HostName | None:
    """The name under SPACES_DOMAIN, without a query; None for any other host (the platform's too)."""
    host = host.strip().lower().rstrip(".").rsplit(":", 1)[0]
    suffix = f".{settings.SPACES_DOMAIN.lower()}"
    if not host.endswith(suffix):
        return None
    label = host[: -len(suffix)]
    if not label or "." in label:
        return None
    if label.startswith(PIN_PREFIX):
        match = PIN_RE.fullmatch(label)
        return HostName(build_id=int(match.group(1))) if match else None
    if "--" in label:
        return HostName(preview=label) if PREVIEW_RE.fullmatch(label) else None
    return HostName(subdomain=label)


def lookup(host: str) -> HostTarget | None:
    """The space (and pinned build or preview) a host serves; None when it names nothing that exists."""
    name = parse(host)
    if name is None:
        return None
    if name.build_id is not None:
        build = Build.objects.select_related("space__owner").filter(pk=name.build_id, pinned=True).first()
        return HostTarget(build.space, build, Deployment.of_pin(build)) if build else None
    if name.preview:
        preview = (
            Deployment.objects.select_related("space__owner", "build")
            .filter(label=name.preview, kind=Deployment.PREVIEW)
            .first()
        )
        return HostTarget(preview.space, preview.build, preview) if preview else None
    space = Space.objects.select_related("owner").filter(subdomain=name.subdomain).first()
    return HostTarget(space) if space else None
