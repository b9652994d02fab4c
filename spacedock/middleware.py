"""Requests that no view should see."""

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
