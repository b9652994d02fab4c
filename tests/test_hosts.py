"""Host -> space: the one reading of a Host header that the proxy views, TLS and visit counts share."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from spacedock.proxy import hosts
from spacedock.spaces.models import Build, Space

pytestmark = pytest.mark.fast


@pytest.mark.parametrize(
    "host, name",
    [
        ("ada-chat.spaces.example.net", hosts.HostName(subdomain="ada-chat")),
        ("ADA-Chat.spaces.example.net:8443", hosts.HostName(subdomain="ada-chat")),
        ("ada-chat.spaces.example.net.", hosts.HostName(subdomain="ada-chat")),
        ("pin--42.spaces.example.net", hosts.HostName(build_id=42)),
        ("pin--42.spaces.example.net:80", hosts.HostName(build_id=42)),
        ("pin--abc.spaces.example.net", None),
        ("pin--.spaces.example.net", None),
        ("pin--².spaces.example.net", None),  # a digit to str.isdigit, not to int()
        ("x.ada-chat.spaces.example.net", None),
        ("spaces.example.net", None),
        (".spaces.example.net", None),
        ("dock.example.org", None),
        ("ada-chat.spaces.example.net.evil.com", None),
        ("", None),
    ],
)
def test_parse_reads_a_host_without_the_database(settings, host, name):
    settings.SPACES_DOMAIN = "spaces.example.net"
    assert hosts.parse(host) == name


def test_lookup_finds_the_space_or_the_pinned_build(db, settings):
    settings.SPACES_DOMAIN = "spaces.example.net"
    space = Space.create(User.objects.create(username="ada"), "chat")
    pinned = Build.objects.create(space=space, commit_sha="c" * 40, state="succeeded", image="x", pinned=True)
    unpinned = Build.objects.create(space=space, commit_sha="d" * 40, state="succeeded", image="y")

    assert hosts.lookup(space.host) == hosts.HostTarget(space)
    assert hosts.lookup(pinned.pinned_host) == hosts.HostTarget(space, pinned)
    assert hosts.lookup(f"pin--{unpinned.pk}.spaces.example.net") is None
    assert hosts.lookup("nobody.spaces.example.net") is None


def test_proxy_views_answer_by_host(db, settings):
    """The wake page and forward_auth find the space by the Host header Caddy passes on."""
    space = Space.create(User.objects.create(username="ada"), "chat", visibility="private")
    build = Build.objects.create(space=space, commit_sha="c" * 40, state="succeeded", image="x", pinned=True)
    client = Client()

    assert client.get("/_runner/auth", HTTP_HOST=space.host).status_code == 403  # private, no token
    Space.objects.filter(pk=space.pk).update(visibility="public")
    assert client.get("/_runner/auth", HTTP_HOST=space.host).status_code == 200
    assert client.get("/_runner/auth", HTTP_HOST="nobody.localhost").status_code == 404

    wake = client.get("/_runner/wake/", HTTP_HOST=space.host)
    assert wake.status_code == 503 and wake["X-Spacedock-Wake"] == "NO_APP_FILE"
    missing = client.get("/_runner/wake/", HTTP_HOST="nobody.localhost")
    assert missing.status_code == 404 and "No space lives at nobody.localhost" in missing.content.decode()
    # Nothing serves a pinned build's host yet: its wake page says so rather than waking the space.
    assert client.get("/_runner/wake/", HTTP_HOST=build.pinned_host).status_code == 404
