"""Host -> space, pinned build or preview: the one reading of a Host header that the proxy views,
TLS and visit counts share."""

import hashlib

import pytest
from django.contrib.auth.models import User
from django.test import Client

from spacedock.proxy import hosts
from spacedock.spaces.models import Build, Deployment, Space

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
        # A preview: the whole label, never its space's subdomain (a preview's requests are its own).
        ("ada-chat--try.spaces.example.net", hosts.HostName(preview="ada-chat--try")),
        ("Ada-Chat--Feature-X.spaces.example.net:8080", hosts.HostName(preview="ada-chat--feature-x")),
        ("ada-chat--fix-1a2b3c.spaces.example.net", hosts.HostName(preview="ada-chat--fix-1a2b3c")),
        ("ada-chat---try.spaces.example.net", None),
        ("ada-chat--.spaces.example.net", None),
        ("--try.spaces.example.net", None),
        ("ada-chat--try--more.spaces.example.net", None),
        ("ada-chat--try_x.spaces.example.net", None),
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


def test_lookup_finds_the_space_the_pinned_build_or_the_preview(db, settings):
    settings.SPACES_DOMAIN = "spaces.example.net"
    space = Space.create(User.objects.create(username="ada"), "chat")
    pinned = Build.objects.create(space=space, commit_sha="c" * 40, state="succeeded", image="x", pinned=True)
    unpinned = Build.objects.create(space=space, commit_sha="d" * 40, state="succeeded", image="y")
    preview = Deployment.objects.create(space=space, kind="preview", branch="Try", label="ada-chat--try")

    assert hosts.lookup(space.host) == hosts.HostTarget(space)
    # A pin made before deployments existed (or imported) gets its deployment, asleep, at its first lookup.
    target = hosts.lookup(pinned.pinned_host)
    assert (target.space, target.build, target.deployment.label) == (space, pinned, f"pin--{pinned.pk}")
    assert target.deployment.stage == "SLEEPING" and target.deployment.host == pinned.pinned_host
    assert hosts.lookup(pinned.pinned_host).deployment == target.deployment  # made once
    assert hosts.lookup(f"pin--{unpinned.pk}.spaces.example.net") is None
    assert hosts.lookup("ada-chat--try.spaces.example.net") == hosts.HostTarget(space, None, preview)
    assert hosts.lookup("ada-chat--other.spaces.example.net") is None
    assert hosts.lookup("nobody.spaces.example.net") is None


def hex6(branch: str) -> str:
    return hashlib.sha256(branch.encode()).hexdigest()[:6]


@pytest.mark.parametrize(
    "branches, labels",
    [
        (["try"], ["ada-chat--try"]),
        (["feature/Sound_2"], ["ada-chat--feature-sound-2"]),
        # Two branches with one label: the second ends in 6 hex of its name, so both are served.
        (["feature-x", "Feature/X"], ["ada-chat--feature-x", f"ada-chat--feature-x-{hex6('Feature/X')}"]),
        (["___"], ["ada-chat--branch"]),
        # Too long for one DNS label: cut, with the digest that keeps it apart.
        (["x" * 80], ["ada-chat--" + "x" * 46 + "-" + hex6("x" * 80)]),
    ],
)
def test_branch_names_map_to_distinct_labels(db, settings, branches, labels):
    space = Space.create(User.objects.create(username="ada"), "chat")
    made = []
    for branch in branches:
        label = Deployment.preview_label(space, branch)
        Deployment.objects.create(space=space, kind="preview", branch=branch, label=label)
        made.append(label)
        assert hosts.parse(f"{label}.{settings.SPACES_DOMAIN}") == hosts.HostName(preview=label)
    assert made == labels
    assert all(len(label) <= 63 for label in made)


def test_proxy_views_answer_by_host(db, settings):
    """The wake page and forward_auth find the space by the Host header Caddy passes on; a pin's or
    a preview's host is gated as its space is, and its wake moves its own stage, not the space's."""
    space = Space.create(User.objects.create(username="ada"), "chat", visibility="private")
    build = Build.objects.create(space=space, commit_sha="c" * 40, state="succeeded", image="x")
    build.pin()
    preview = Deployment.objects.create(
        space=space, kind="preview", branch="try", label="ada-chat--try", build=build, stage="SLEEPING"
    )
    Space.objects.filter(pk=space.pk).update(stage="SLEEPING", deployed_build=build)
    client = Client()

    for host in (space.host, build.pinned_host, preview.host):
        assert client.get("/_runner/auth", HTTP_HOST=host).status_code == 403  # private, no token
        assert client.get("/_runner/wake/", HTTP_HOST=host).status_code == 403
    assert Deployment.objects.get(kind="pin").stage == "SLEEPING"
    Space.objects.filter(pk=space.pk).update(visibility="public")
    for host in (space.host, build.pinned_host, preview.host):
        assert client.get("/_runner/auth", HTTP_HOST=host).status_code == 200
    assert client.get("/_runner/auth", HTTP_HOST="nobody.localhost").status_code == 404

    pin = client.get("/_runner/wake/", HTTP_HOST=build.pinned_host)
    assert pin.status_code == 503 and pin["X-Spacedock-Wake"] == "APP_STARTING"
    assert f"pinned build {build.pk}" in pin.content.decode()
    assert Deployment.objects.get(kind="pin").stage == "APP_STARTING"
    assert Space.objects.get(pk=space.pk).stage == "SLEEPING"  # the space itself sleeps on
    woken = client.get("/_runner/wake/", HTTP_HOST=preview.host)
    assert woken["X-Spacedock-Wake"] == "APP_STARTING" and "preview of try" in woken.content.decode()
    assert Space.objects.get(pk=space.pk).stage == "SLEEPING"

    wake = client.get("/_runner/wake/", HTTP_HOST=space.host)
    assert wake.status_code == 503 and wake["X-Spacedock-Wake"] == "APP_STARTING"
    missing = client.get("/_runner/wake/", HTTP_HOST="nobody.localhost")
    assert missing.status_code == 404 and "No space lives at nobody.localhost" in missing.content.decode()
    gone = client.get("/_runner/wake/", HTTP_HOST="ada-chat--deleted.localhost")
    assert gone.status_code == 404 and "that branch was deleted, or never pushed" in gone.content.decode()
    build.unpin()
    unpinned = client.get("/_runner/wake/", HTTP_HOST=build.pinned_host)
    assert unpinned.status_code == 404 and not Deployment.objects.filter(kind="pin").exists()
