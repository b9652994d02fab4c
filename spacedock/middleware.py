"""Requests that no view should see."""

import secrets

from django.conf import settings
from django.http import HttpResponseBadRequest


def reject_nul_bytes(get_response):
    """A NUL byte in the path or the query is never a name: 400 before any view or query runs.

    Postgres refuses NUL in strings, so without this a lookup by such a name is a 500.
    """

    def middleware(request):
        if "\x00" in request.path or any("\x00" in v for _, values in request.GET.lists() for v in values):
            return HttpResponseBadRequest(
                "Addresses cannot contain NUL (%00) characters.\n", content_type="text/plain"
            )
        return get_response(request)

    return middleware


def content_security_policy(get_response):
    """A CSP for the platform's own pages: scripts only from the platform or inline with this
    response's nonce (templates write `nonce="{{ request.csp_nonce }}"`), frames only of spaces."""
    spaces = f"{settings.SCHEME}://*.{settings.SPACES_DOMAIN}{settings.PORT_SUFFIX}"

    def middleware(request):
        request.csp_nonce = secrets.token_urlsafe(16)
        response = get_response(request)
        if (
            response.get("Content-Type", "").startswith("text/html")
            and "Content-Security-Policy" not in response
        ):
            response["Content-Security-Policy"] = (
                f"default-src 'self'; script-src 'self' 'nonce-{request.csp_nonce}'; "
                "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                f"frame-src 'self' {spaces}; connect-src 'self'; object-src 'none'; base-uri 'self'; "
                "form-action 'self'"
            )
            # A page that may be framed only by some origins (a wake page of an app that
            # disables embedding) says which; other pages may be framed (embeds of the wake page).
            if ancestors := getattr(response, "frame_ancestors", None):
                response["Content-Security-Policy"] += f"; frame-ancestors {ancestors}"
        return response

    return middleware
