import re
import subprocess
import sys

from django.contrib.auth.models import User
from django.test import Client

from spacedock.accounts.models import AccessToken
from tests.conftest import ROOT, process_env


def test_issue_token_creates_the_user_and_prints_a_token_last(transactional_db):
    result = subprocess.run(
        [sys.executable, "manage.py", "issue_token", "carol"],
        cwd=ROOT, env=process_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    raw = result.stdout.strip().splitlines()[-1]
    assert raw.startswith("sd_")
    token = AccessToken.objects.get(user__username="carol")
    assert token.scope == "write"
    assert raw not in (token.digest, token.hint)  # only a digest is stored
    assert AccessToken.authenticate(raw) == token
    assert User.objects.filter(username="carol").count() == 1


def test_issue_token_refuses_a_bad_username(transactional_db):
    result = subprocess.run(
        [sys.executable, "manage.py", "issue_token", "../root"],
        cwd=ROOT, env=process_env(), capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "not a valid username" in result.stderr
    assert not User.objects.exists()


def test_issue_token_prints_a_sign_in_link_that_works_once(transactional_db):
    """The README's user signs in to the web UI: issue_token prints where to choose a password.
    Run by the system's python3, as `./manage.py` runs on a fresh machine: manage.py finds the venv."""
    result = subprocess.run(
        ["/usr/bin/python3", "manage.py", "issue_token", "dora"],
        cwd=ROOT, env=process_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert result.stdout.strip().splitlines()[-1].startswith("sd_")
    link = re.search(r"http://\S+(/login/set/\S+)", result.stderr)
    assert link, result.stderr
    client = Client()
    page = client.get(link[1])
    assert page.status_code == 200 and b"Choose a password for dora" in page.content
    assert not User.objects.get(username="dora").has_usable_password()  # a GET uses nothing up
    password = "a long pass phrase"
    answer = client.post(link[1], {"new_password1": password, "new_password2": password})
    assert answer.status_code == 302
    assert client.get("/settings/tokens").status_code == 200  # signed in
    assert Client().login(username="dora", password="a long pass phrase")
    assert Client().get(link[1]).status_code == 404  # once only
