import subprocess
import sys

from django.contrib.auth.models import User

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
