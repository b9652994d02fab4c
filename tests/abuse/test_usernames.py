"""Sign-ups that try to look like someone else or like the platform itself: `alice_` beside
`alice`, `Alice`, `metrics`. Each is a form error (or issue_token's message), never a second
user whose spaces read as the first one's, and never a 500."""

import subprocess
import sys

import pytest
from django.contrib.auth.models import User

from spacedock.accounts.names import reserved_names
from tests.conftest import ROOT, process_env

PASSWORD = "correct horse battery staple"


def sign_up(client, username: str, password: str = PASSWORD):
    return client.post("/signup", {"username": username, "password1": password, "password2": password})


@pytest.mark.django_db
@pytest.mark.parametrize("lookalike", ["alice_", "Alice", "ALICE", "alice-", "_alice"[1:] + "__"])
def test_a_name_that_reads_as_an_existing_users_is_refused(client, lookalike):
    User.objects.create_user("alice")
    page = sign_up(client, lookalike)
    assert page.status_code == 200
    text = page.content.decode()
    assert "too close to the existing user" in text or "already exists" in text
    assert User.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name", ["metrics", "healthz", "tls", "api", "admin", "login", "signup", "embed", "Spaces"]
)
def test_every_top_level_path_is_a_reserved_name(client, name):
    assert name.lower() in reserved_names()
    page = sign_up(client, name)
    assert page.status_code == 200 and "is reserved" in page.content.decode()
    assert not User.objects.exists()


@pytest.mark.django_db
def test_a_taken_name_is_a_form_error(client):
    User.objects.create_user("bob")
    page = sign_up(client, "bob")
    assert page.status_code == 200 and "already exists" in page.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "password, says",
    [("short1", "too short"), ("password123", "too common"), ("8675309123456", "entirely numeric")],
)
def test_weak_passwords_are_refused(client, password, says):
    page = sign_up(client, "carol", password)
    assert says in page.content.decode() and not User.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_issue_token_refuses_a_lookalike_with_a_clear_message():
    User.objects.create_user("alice")
    result = subprocess.run(
        [sys.executable, "manage.py", "issue_token", "alice_"],
        cwd=ROOT, env=process_env(), capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0 and "too close to the existing user 'alice'" in result.stderr
    assert not User.objects.filter(username="alice_").exists()
