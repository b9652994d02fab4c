"""Which usernames may exist: not a top-level path of the platform, and not one that reads as an
existing user's once it is turned into a subdomain (`alice_` is `alice` in `alice-hello.<domain>`)."""

import functools
import re

from django.contrib.auth.models import User

# Paths served outside the URLconf (Caddy, static files) or kept for later, beside its own.
EXTRA_RESERVED = {"static", "media", "settings", "new", "www", "assets"}


def subdomain_form(username: str) -> str:
    """The username as it reads in a space's subdomain: lower case, runs of other characters one '-'."""
    return re.sub(r"[^a-z0-9]+", "-", username.lower()).strip("-")


@functools.cache
def reserved_names() -> frozenset[str]:
    """Every first path segment of the platform's URLconf, and EXTRA_RESERVED: /<username> is a profile,
    so a user named `metrics` or `healthz` would be shadowed by the page of that name."""
    from django.urls import get_resolver

    names = set(EXTRA_RESERVED)

    def walk(patterns) -> None:
        for pattern in patterns:
            text = str(pattern.pattern).lstrip("^")
            segment = re.split(r"[/<($\\[?]", text, maxsplit=1)[0]
            if segment and re.fullmatch(r"[A-Za-z0-9_.-]+", segment):
                names.add(segment.lower())
            elif not segment and hasattr(pattern, "url_patterns"):
                walk(pattern.url_patterns)

    walk(get_resolver().url_patterns)
    return frozenset(names)


def username_problem(username: str) -> str:
    """Why `username` cannot be a new user, or "" when it can."""
    form = subdomain_form(username)
    if username.lower() in reserved_names():
        return f"{username!r} is reserved: the platform has a page at /{username.lower()}."
    for taken in User.objects.filter(username__iregex=r"^[^a-zA-Z0-9]*" + _loose(form)).values_list(
        "username", flat=True
    ):
        if subdomain_form(taken) == form:
            return (
                f"{username!r} is too close to the existing user {taken!r}: both would appear as "
                f"'{form}' in space addresses. Pick another name."
            )
    return ""


def _loose(form: str) -> str:
    # Narrows the candidates in SQL: each '-' of the form stands for any run of other characters.
    return "[^a-zA-Z0-9]+".join(re.escape(part) for part in form.split("-"))
