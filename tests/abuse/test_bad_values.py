"""Odd values in the API's parameters and bodies: each gets a 400 in the Hub's shape that says what
to send, never a 500, and nothing about the space changes."""

import pytest
import requests
from django.contrib.auth.models import User

from spacedock.spaces.models import Build, Space

HUGE = 10**30


@pytest.fixture
def owned(live, token_for):
    space = Space.create(User.objects.create_user("ada"), "demo")
    Build.objects.create(space=space, commit_sha="a" * 40, state="succeeded", image="sdabuse/ada-demo:a")
    return live, space, {"Authorization": f"Bearer {token_for('ada')}"}


def api(live, method: str, path: str, headers: dict, **kwargs) -> requests.Response:
    return requests.request(
        method, f"{live.url}/api/spaces/ada/demo{path}", headers=headers, timeout=10, **kwargs
    )


@pytest.mark.parametrize("build", ["x", "1.5", "-3", str(HUGE), "١"])
def test_a_build_log_for_a_build_that_is_not_a_number(owned, build):
    live, _, headers = owned
    answer = api(live, "GET", f"/logs/build?build={build}", headers)
    assert answer.status_code == 400 and "build number" in answer.headers["X-Error-Message"]


@pytest.mark.parametrize("build", ["x", None, [], {"id": 1}, 1.5, True, HUGE, -1])
def test_rollback_to_something_that_is_not_a_build(owned, build):
    live, space, headers = owned
    answer = api(live, "POST", "/rollback", headers, json={"build": build})
    assert answer.status_code == 400 and "naming a succeeded build" in answer.json()["error"]
    assert Space.objects.get(pk=space.pk).deployed_build_id is None


@pytest.mark.parametrize("seconds", [HUGE, 2**31, "3600", 59, 1e9, None, [3600]])
def test_a_sleep_time_that_cannot_be_stored(owned, seconds):
    live, space, headers = owned
    answer = api(live, "POST", "/sleeptime", headers, json={"seconds": seconds})
    assert answer.status_code == 400 and "-1 to never sleep" in answer.json()["error"]
    assert Space.objects.get(pk=space.pk).sleep_time == 172800


@pytest.mark.parametrize(
    "body, says",
    [
        ({"sleepTimeSeconds": HUGE}, "sleepTimeSeconds"),
        ({"secrets": ["API_KEY=1"]}, "must be an object"),
        ({"secrets": [None]}, "must be an object"),
        ({"secrets": {"API_KEY": "1"}}, "must be a list"),
        ({"variables": [{"key": "1BAD", "value": "x"}]}, "not a valid variable name"),
        ({"secrets": [{"key": "K", "value": {"nested": 1}}]}, "must be a string"),
    ],
)
def test_a_duplicate_with_odd_entries(owned, body, says):
    live, _, headers = owned
    answer = api(live, "POST", "/duplicate", headers, json={"repository": "ada/copy", **body})
    assert answer.status_code == 400 and says in answer.json()["error"]
    assert not Space.objects.filter(name="copy").exists()


@pytest.mark.parametrize("query", ["limit=x", "offset=y", "limit=-5", "limit=0", f"offset={HUGE}"])
def test_list_parameters_that_are_not_numbers(live, query):
    answer = requests.get(f"{live.url}/api/spaces?{query}", timeout=10)
    assert answer.status_code == 400 and "limit must be a whole number" in answer.json()["error"]


def test_a_huge_list_limit_is_cut_to_a_page(live):
    assert requests.get(f"{live.url}/api/spaces?limit={HUGE}", timeout=10).json() == []


@pytest.mark.parametrize("query", ["size=x", f"size={HUGE}", "page=x", f"page={HUGE}"])
def test_gallery_parameters_that_are_not_numbers(live, query):
    assert requests.get(f"{live.url}/?{query}", timeout=10).status_code == 200
