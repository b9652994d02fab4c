"""Who may see a private space at its own host.

The platform's session cookie never goes to the spaces domain, so the space page hands its iframe
a short-lived signed link (spacedock.spaces.embed.space_embed_url). The first request with it gets
a cookie for that host alone; scripts send an access token as `Authorization: Bearer` (or
gradio_client's `X-HF-Authorization`) instead; Caddy strips both before the request reaches the space.
"""

from urllib.parse import parse_qsl, urlencode, urlsplit

from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing

from spacedock.accounts.auth import BadCredentials, token_from_request
from spacedock.accounts.models import AccessToken
from spacedock.spaces.embed import QUERY_KEY, SALT_URL, signed_token
from spacedock.spaces.models import Space

COOKIE = "spacedock-space"
COOKIE_MAX_AGE = 12 * 3600
SALT_COOKIE = "spacedock.runner.cookie"  # the name it was first issued under: cookies out there stay valid


def _reader(space: Space, token: str, salt: str, max_age: int) -> User | None:
    try:
        data = signing.loads(token, salt=salt, max_age=max_age)
    except signing.BadSignature:
        return None
    if data.get("s") != space.pk:
        return None
    user = User.objects.filter(pk=data.get("u"), is_active=True).first()
    return user if user and space.can_read(user) else None


def decide(request, space: Space, uri: str) -> tuple[str, str]:
    """('allow', ''), ('redirect', <uri without token>) with a cookie to set, or ('deny', why)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    signed = next((v for k, v in query if k == QUERY_KEY), None)
    if signed is not None:
        if _reader(space, signed, SALT_URL, settings.EMBED_TOKEN_MAX_AGE):
            clean = urlencode([(k, v) for k, v in query if k != QUERY_KEY])
            return "redirect", (parts.path or "/") + (f"?{clean}" if clean else "")
        return "deny", "The link has expired: open the space from its page again."
    if (cookie := request.COOKIES.get(cookie_name())) and _reader(space, cookie, SALT_COOKIE, COOKIE_MAX_AGE):
        return "allow", ""
    try:
        token = token_from_request(request)
    except BadCredentials:
        token = None
    # gradio_client 2 sends its token as X-HF-Authorization.
    kind, _, raw = request.META.get("HTTP_X_HF_AUTHORIZATION", "").partition(" ")
    if token is None and kind.lower() == "bearer" and raw.strip():
        token = AccessToken.authenticate(raw.strip())
    if token is not None and token.acts_for_user and space.can_read(token.user):
        return "allow", ""
    return "deny", "This space is private. Open it from its page on the platform while signed in."


def cookie_name() -> str:
    """On https the cookie is `__Host-` prefixed: browsers then keep it to the one host that set it,
    secure and for every path, so no sibling subdomain can plant or widen it."""
    return f"__Host-{COOKIE}" if settings.SCHEME == "https" else COOKIE


def set_cookie(response, request, space: Space) -> None:
    signed = next(
        (v for k, v in parse_qsl(urlsplit(_uri(request)).query) if k == QUERY_KEY),
        "",
    )
    data = signing.loads(signed, salt=SALT_URL)
    user = User.objects.get(pk=data["u"])
    secure = settings.SCHEME == "https"
    response.set_cookie(
        cookie_name(),
        signed_token(space, user, SALT_COOKIE),
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        secure=secure,
        # Inside an iframe on another site the cookie must be SameSite=None, which needs https.
        samesite="None" if secure else "Lax",
    )


def _uri(request) -> str:
    return request.META.get("HTTP_X_FORWARDED_URI") or request.get_full_path()
