"""The one reading of a Host header under SPACES_DOMAIN: which space (or pinned build) it names.

    <subdomain>.<SPACES_DOMAIN>       a space (Space.subdomain)
    pin--<build id>.<SPACES_DOMAIN>   a pinned build (Build.pinned_host)

make_subdomain never puts "--" in a subdomain, so the two never clash.
"""

import re
from dataclasses import dataclass

from django.conf import settings

from spacedock.spaces.models import Build, Space

PIN_PREFIX = "pin--"
PIN_RE = re.compile(rf"{PIN_PREFIX}([0-9]{{1,18}})")


@dataclass(frozen=True)
class HostName:
    """What a host names, read from the text alone: a space's subdomain or a pinned build's id."""

    subdomain: str = ""
    build_id: int | None = None


@dataclass(frozen=True)
class HostTarget:
    space: Space
    build: Build | None = None  # the pinned build a pin host serves; None for the space's own host


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
    return HostName(subdomain=label)


def lookup(host: str) -> HostTarget | None:
    """The space (and pinned build) a host serves; None when it names nothing that exists."""
    name = parse(host)
    if name is None:
        return None
    if name.build_id is not None:
        build = Build.objects.select_related("space__owner").filter(pk=name.build_id, pinned=True).first()
        return HostTarget(build.space, build) if build else None
    space = Space.objects.select_related("owner").filter(subdomain=name.subdomain).first()
    return HostTarget(space) if space else None
