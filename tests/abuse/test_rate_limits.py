"""Someone hammers sign-in, sign-up, token creation, the API and git. Past each limit they get a
429 with Retry-After and a message that says so; other addresses and other users carry on.

These tests run a server of their own with low limits (the suite's own server has them raised)."""

import html
import itertools
import uuid

import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache

from spacedock.spaces.models import Space
from tests.conftest import Repo, gunicorn

LIMITS = {
    "SPACEDOCK_RATE_LOGIN": "3/300",
    "SPACEDOCK_RATE_SIGNUP": "2/3600",
    "SPACEDOCK_RATE_TOKENS": "2/3600",
    "SPACEDOCK_RATE_API": "5/60",
    "SPACEDOCK_RATE_GIT": "4/60",
}
PASSWORD = "correct horse battery staple"


def forget_counters() -> None:
    """Counters of an earlier run of this module would still hold in Redis."""
    if settings.REDIS_URL:
        client = cache._cache.get_client(write=True)
        for key in client.scan_iter(match=f"{settings.INSTANCE}:*:rate:*"):
            client.delete(key)
    else:
        cache.clear()


@pytest.fixture(scope="module")
def strict(server, tmp_path_factory):
    forget_counters()
    with gunicorn(tmp_path_factory, **LIMITS) as started:
        yield started


@pytest.fixture
def strict_live(strict, transactional_db):
    return strict


ADDRESSES = itertools.count(1)


def visitor() -> str:
    """An address of its own for each visitor, as Caddy names it in X-Forwarded-For."""
    return f"198.51.100.{next(ADDRESSES)}"


def browser(site, address: str) -> requests.Session:
    session = requests.Session()
    session.headers["X-Forwarded-For"] = address
    session.get(f"{site.url}/login", timeout=10)
    return session


def post_form(session, site, path: str, data: dict) -> requests.Response:
    token = session.cookies["csrftoken"]
    return session.post(
        f"{site.url}{path}",
        data={**data, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{site.url}{path}"},
        timeout=10,
    )


def test_guessing_a_password_locks_the_name_not_the_platform(strict_live):
    User.objects.create_user("ada", password=PASSWORD)
    for attempt in range(3):  # from three addresses: the name is what is guarded
        guess = post_form(
            browser(strict_live, visitor()),
            strict_live,
            "/login",
            {"username": "ada", "password": f"x{attempt}"},
        )
        assert guess.status_code == 200 and "Please enter a correct username" in html.unescape(guess.text)
    locked = post_form(
        browser(strict_live, visitor()), strict_live, "/login", {"username": "ada", "password": PASSWORD}
    )
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins" in locked.text
    User.objects.create_user("bob", password=PASSWORD)
    other = post_form(
        browser(strict_live, visitor()), strict_live, "/login", {"username": "bob", "password": PASSWORD}
    )
    assert other.status_code == 200 and other.url.endswith("/")  # signed in and sent home


def test_one_address_signs_up_only_so_many_accounts(strict_live):
    address = visitor()
    for i in range(2):
        name = f"bulk{i}{uuid.uuid4().hex[:6]}"
        made = post_form(browser(strict_live, address), strict_live, "/signup",
                         {"username": name, "password1": PASSWORD, "password2": PASSWORD})  # fmt: skip
        assert made.status_code == 200 and User.objects.filter(username=name).exists()
    refused = post_form(browser(strict_live, address), strict_live, "/signup",
                        {"username": "bulk9", "password1": PASSWORD, "password2": PASSWORD})  # fmt: skip
    assert refused.status_code == 429 and "Too many sign-ups" in refused.text
    assert not User.objects.filter(username="bulk9").exists()
    elsewhere = post_form(browser(strict_live, visitor()), strict_live, "/signup",
                          {"username": "bulk8", "password1": PASSWORD, "password2": PASSWORD})  # fmt: skip
    assert elsewhere.status_code == 200 and User.objects.filter(username="bulk8").exists()


def test_token_creation_is_limited_per_user(strict_live):
    User.objects.create_user("minter", password=PASSWORD)
    session = browser(strict_live, visitor())
    post_form(session, strict_live, "/login", {"username": "minter", "password": PASSWORD})
    for i in range(2):
        assert post_form(session, strict_live, "/settings/tokens/new", {"name": f"t{i}", "scope": "read"}).ok
    refused = post_form(session, strict_live, "/settings/tokens/new", {"name": "t9", "scope": "read"})
    assert refused.status_code == 429 and "Too many new tokens" in refused.text
    assert User.objects.get(username="minter").tokens.count() == 2


def test_the_api_answers_429_in_the_hubs_shape_per_address_and_per_user(strict_live, token_for):
    User.objects.create_user("caller")
    token = token_for("caller", "read")
    headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": visitor()}
    for _ in range(5):
        assert (
            requests.get(f"{strict_live.url}/api/whoami-v2", headers=headers, timeout=10).status_code == 200
        )
    refused = requests.get(f"{strict_live.url}/api/whoami-v2", headers=headers, timeout=10)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "Too many API requests" in refused.headers["X-Error-Message"] == refused.json()["error"]
    # The same user from another address: still theirs to wait out.
    moved = {**headers, "X-Forwarded-For": visitor()}
    assert requests.get(f"{strict_live.url}/api/whoami-v2", headers=moved, timeout=10).status_code == 429
    # Another visitor, anonymous, is served.
    anonymous = requests.get(
        f"{strict_live.url}/api/spaces", headers={"X-Forwarded-For": visitor()}, timeout=10
    )
    assert anonymous.status_code == 200


def test_git_shows_the_limit_to_whoever_hammers_it(strict_live, tmp_path):
    Space.create(User.objects.create_user("gitty"), "repo")
    address = visitor()
    git = Repo(tmp_path / "clone")
    url = f"http://127.0.0.1:{strict_live.port}/spaces/gitty/repo"
    for _ in range(2):  # git's protocol v2 makes two requests per ls-remote: four, the limit
        listed = git.git("-c", f"http.extraHeader=X-Forwarded-For: {address}", "ls-remote", url, check=False)
        assert listed.returncode == 0, listed.stderr
    refused = git.git("-c", f"http.extraHeader=X-Forwarded-For: {address}", "ls-remote", url, check=False)
    assert refused.returncode != 0
    assert "remote: Too many git requests from your address or account; try again in" in refused.stderr
    other = git.git("-c", f"http.extraHeader=X-Forwarded-For: {visitor()}", "ls-remote", url, check=False)
    assert other.returncode == 0, other.stderr
