"""Who is asking: a session for people in a browser, a token for git and API clients."""

import base64

from spacedock.accounts.models import AccessToken


class BadCredentials(Exception):
    """An Authorization header was sent, and it names no valid token."""


def token_from_request(request) -> AccessToken | None:
    """The token in an `Authorization: Basic user:token` or `Bearer token` header, if any."""
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
    elif kind == "bearer":
        raw = value.strip()
    else:
        raise BadCredentials(f"unsupported Authorization scheme {kind!r}")
    token = AccessToken.authenticate(raw) if raw else None
    if token is None:
        raise BadCredentials("the token is wrong, revoked, or its user is disabled")
    return token
