"""The token a build worker fetches its commit with over git's smart HTTP (docs/cluster.md).

It is not a user's token, and no row holds it: the worker makes it for one build from the
shared key `SPACEDOCK_BUILD_FETCH_KEYS`, and it names that build. The platform takes it only
while that build is `building`, only for that build's space, and only to fetch (git-upload-pack
and Git LFS downloads): a leaked one cannot push, cannot call the API, cannot read another
space, and is dead once its build ends. The platform checks it against every key listed, so a
key is rotated by listing the new one first (workers sign with the first) and dropping the old
one once every worker has the new list; with no key listed every build token is refused.
"""

import hashlib
import hmac

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from spacedock.accounts.auth import BadCredentials, presented_secret
from spacedock.spaces.models import Build, Space

PREFIX = "sdbuild_"
# The Basic user name workers send; the platform reads only the password.
USER = "spacedock-build"
# Sent with a 403, not a 401: git would ask for a user's credentials instead of showing it.
REFUSED = "Authentication failed: the build token is wrong, revoked, or its build has ended."


def _mac(key: str, build: Build) -> str:
    message = f"fetch\0{build.pk}\0{build.space_id}\0{build.commit_sha}"
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


def make(build: Build) -> str:
    """The token the worker building `build` fetches its space with."""
    if not settings.BUILD_FETCH_KEYS:
        raise ImproperlyConfigured("SPACEDOCK_BUILD_FETCH_KEYS is empty: a build cannot fetch over HTTP")
    return f"{PREFIX}{build.pk}_{_mac(settings.BUILD_FETCH_KEYS[0], build)}"


def presented(request) -> str | None:
    """The build token a request carries as its credentials; None when it carries another or none."""
    try:
        raw = presented_secret(request)
    except BadCredentials:
        return None
    return raw if raw and raw.startswith(PREFIX) else None


def build_for(raw: str, space: Space) -> Build | None:
    """The running build of `space` that the token was made for; None when the token is wrong,
    signed with a key no longer listed, made for another space, or its build is not running."""
    number, _, mac = raw.removeprefix(PREFIX).partition("_")
    if not number.isdigit() or not settings.BUILD_FETCH_KEYS:
        return None
    build = Build.objects.filter(pk=int(number), space=space, state="building").first()
    if build is None:
        return None
    if any(hmac.compare_digest(mac, _mac(key, build)) for key in settings.BUILD_FETCH_KEYS):
        return build
    return None
