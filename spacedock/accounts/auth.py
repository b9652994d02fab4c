"""Who is asking: a session for people in a browser, a token for git and API clients."""

import base64
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied

from spacedock.accounts.models import AccessToken


class BadCredentials(PermissionDenied):
    """An Authorization header was sent, and it names no valid token (a page shows it as a 403)."""


def presented_secret(request) -> str | None:
    """The secret of an `Authorization: Basic user:secret` or `Bearer secret` header, if any."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return None
    kind, _, value = header.partition(" ")
    kind = kind.lower()
    if kind == "basic":
        try:
            _, _, raw = base64.b64decode(value.strip()).decode().partition(":")
        except ValueError:
            raise BadCredentials("the Authorization header is not valid Basic credentials") from None
        return raw
    if kind == "bearer":
        return value.strip()
    raise BadCredentials(f"unsupported Authorization scheme {kind!r}")


def token_from_request(request) -> AccessToken | None:
    """The token in an `Authorization: Basic user:token` or `Bearer token` header, if any."""
    raw = presented_secret(request)
    if raw is None:
        return None
    token = AccessToken.authenticate(raw) if raw else None
    if token is None:
        raise BadCredentials("the token is wrong, revoked, or its user is disabled")
    return token


@dataclass(frozen=True)
class Principal:
    """The one caller of a request: a token's user, or a session's user, or nobody."""

    user: User | None = None
    token: AccessToken | None = None


def principal(request) -> Principal:
    """Who is asking, judged one way: a request with an Authorization header by its token alone
    (BadCredentials when it names none, whatever session comes with it), else by its session."""
    if request.META.get("HTTP_AUTHORIZATION"):
        token = token_from_request(request)
        # An app's sign-in token says who its user is (whoami) and acts as nobody.
        return Principal(token.user if token.acts_for_user else None, token)
    user = getattr(request, "user", None)
    return Principal(user if user is not None and user.is_authenticated else None)
