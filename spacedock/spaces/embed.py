"""Where the space page and the embed view point their iframe.

A private space's iframe gets a short-lived signed link; spacedock.proxy.access checks it at the
space's host and turns it into a cookie for that host.
"""

import re
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing

from spacedock.spaces.models import Build, Space

QUERY_KEY = "__sign"
SALT_URL = "spacedock.runner.embed"  # the name it was first issued under: links out there stay valid


def signed_token(space: Space, user, salt: str) -> str:
    return signing.dumps({"s": space.pk, "u": user.pk}, salt=salt, compress=True)


def space_embed_url(space: Space, user) -> str:
    """The URL an iframe of this space uses for this viewer: signed when the space is private."""
    if not space.is_private or not space.can_read(user):
        return space.url
    return f"{space.url}?{urlencode({QUERY_KEY: signed_token(space, user, SALT_URL)})}"


def embed_snippets(space: Space) -> dict[str, str]:
    """The code a paper author copies: an iframe always, the web component for Gradio apps."""
    src = space.url
    iframe = (
        f'<iframe src="{src}" frameborder="0" width="850" height="450" '
        'allow="camera; microphone; clipboard-read; clipboard-write; fullscreen"></iframe>'
    )
    snippets = {"iframe": iframe}
    build = space.deployed_build
    if not space.is_private and build is not None and build.web_component_js:
        # Gradio's own front end, from the app itself: readers need no CDN, and it matches the
        # app's Gradio version.
        snippets["web_component"] = (
            f'<script type="module" src="{src}{build.web_component_js}"></script>\n'
            f'<gradio-app src="{src}"></gradio-app>'
        )
    return snippets


def pinned_embed_page(space: Space, build: Build) -> str:
    """The page a paper embeds for one commit: it keeps pointing at that build's image."""
    return f"{settings.SITE_URL}/embed/{space.full_name}/{build.commit_sha}"


def pinned_app_url(space: Space, build: Build, user) -> str | None:
    """Where a pinned embed's iframe points; None while nothing serves that build.

    A pinned build runs at its own host (Build.pinned_host), which the runner serves
    like any space, sleeping and waking. An unpinned build is only served while it is
    the deployed one.
    """
    if build.pinned:
        return build.pinned_url
    if build.pk == space.deployed_build_id:
        return space_embed_url(space, user)
    return None


def citation(space: Space, build: Build) -> str:
    """BibTeX for a paper that cites a pinned build: its embed page keeps showing that build."""

    def braced(text: str) -> str:
        # BibTeX reads braces and backslashes; a title is the author's free text.
        return "".join(ch for ch in text if ch not in "{}\\")

    year = (build.finished or build.created).year
    key = re.sub(r"[^A-Za-z0-9]+", "_", f"{space.owner.username}_{space.name}_{year}")
    return (
        f"@misc{{{key},\n"
        f"  title = {{{braced(space.title or space.name)}}},\n"
        f"  author = {{{braced(space.owner.get_full_name() or space.owner.username)}}},\n"
        f"  year = {{{year}}},\n"
        f"  howpublished = {{\\url{{{pinned_embed_page(space, build)}}}}},\n"
        f"  note = {{Spacedock space {braced(space.full_name)}, build {build.commit_sha[:7]}}}\n"
        "}"
    )
