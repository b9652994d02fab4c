"""A variable's key is an environment variable name, never a path: the duplicate route stored
secret keys unchecked, and the docker-sdk build wrote each secret to `secrets_dir / key`."""

import pytest
import requests
from django.db import IntegrityError, transaction

from spacedock.spaces.models import Space, Variable

ATTACK_KEYS = [
    "../../../../../../tmp/spacedock-pwned",
    "/tmp/spacedock-pwned-abs",
    "x,src=/etc/shadow",
    "A=B",
    "SYSTEM",
    "",
]


@pytest.fixture
def hello(live, token_for, make_repo):
    alice = token_for("alice")
    assert make_repo().push(live.git_url("alice", "hello", alice)).returncode == 0
    return live


@pytest.mark.parametrize("key", ATTACK_KEYS)
def test_duplicate_refuses_a_secret_key_that_is_no_variable_name(hello, token_for, key, tmp_path):
    mallory = token_for("mallory")
    answer = requests.post(
        f"{hello.url}/api/spaces/alice/hello/duplicate",
        json={"repository": "mallory/copy", "secrets": [{"key": key, "value": "import os"}]},
        headers={"Authorization": f"Bearer {mallory}"},
        timeout=30,
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert "not a valid variable name" in error or "set by Spacedock itself" in error
    # Nothing half-made is left behind for the builder to find.
    assert not Space.objects.filter(owner__username="mallory").exists()
    assert not Variable.objects.filter(key=key).exists()


def test_duplicate_refuses_malformed_entries_with_a_message(hello, token_for):
    mallory = token_for("mallory")
    for body in (
        {"repository": "mallory/copy", "secrets": ["KEY=value"]},
        {"repository": "mallory/copy", "secrets": {"key": "K"}},
        {"repository": "mallory/copy", "variables": [{"key": "../x", "value": "1"}]},
    ):
        answer = requests.post(
            f"{hello.url}/api/spaces/alice/hello/duplicate",
            json=body,
            headers={"Authorization": f"Bearer {mallory}"},
            timeout=30,
        )
        assert answer.status_code == 400, (body, answer.text)
    assert not Space.objects.filter(owner__username="mallory").exists()


def test_duplicate_with_a_good_secret_key_still_works(hello, token_for):
    mallory = token_for("mallory")
    answer = requests.post(
        f"{hello.url}/api/spaces/alice/hello/duplicate",
        json={"repository": "mallory/copy", "secrets": [{"key": "API_KEY", "value": "s3cret"}]},
        headers={"Authorization": f"Bearer {mallory}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    copy = Space.objects.get(owner__username="mallory", name="copy")
    assert copy.variables.get(key="API_KEY").is_secret


@pytest.mark.fast
@pytest.mark.django_db
@pytest.mark.parametrize("key", ATTACK_KEYS)
def test_the_database_refuses_such_a_key_from_any_code_path(key, django_user_model):
    owner = django_user_model.objects.create(username="alice")
    space = Space.objects.create(owner=owner, name="hello", subdomain="alice-hello")
    with pytest.raises(IntegrityError), transaction.atomic():
        Variable.objects.create(space=space, key=key, value="x", is_secret=True)
