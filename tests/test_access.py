"""One access policy for the pages and the API: who the caller is, what a stranger sees, what a
non-owner is told, and one answer for a body that is not JSON."""

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client

from spacedock.accounts.models import AccessToken
from spacedock.spaces.models import Build, Space

pytestmark = [pytest.mark.fast, pytest.mark.django_db]


@pytest.fixture
def ada():
    return User.objects.create_user("ada")


@pytest.fixture
def eve():
    return User.objects.create_user("eve")


def make(owner: User, name: str, **fields) -> Space:
    return Space.objects.create(owner=owner, name=name, subdomain=f"{owner.username}-{name}", **fields)


def signed_in(user: User, csrf_checks: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf_checks)
    client.force_login(user)
    return client


def bearer(user: User, scope: str = "write") -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.issue(user, 't', scope)[1]}"}


def post_json(client: Client, url: str, body, **headers):
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(url, data, content_type="application/json", **headers)


@pytest.mark.parametrize(
    "path",
    ["/ada/secret", "/ada/secret/files", "/ada/secret/logs", "/ada/secret/api", "/ada/secret/embed",
     "/embed/ada/secret", "/api/spaces/ada/secret", "/api/spaces/ada/secret/runtime",
     "/api/spaces/ada/secret/likers", "/api/spaces/ada/secret/logs/build"],
)  # fmt: skip
def test_a_private_space_is_not_found_by_others(ada, eve, path):
    make(ada, "secret", visibility="private")
    assert Client().get(path).status_code == 404
    assert signed_in(eve).get(path).status_code == 404
    assert Client().get(path, **bearer(eve)).status_code == 404
    assert signed_in(ada).get(path).status_code == 200
    assert Client().get(path, **bearer(ada, "read")).status_code == 200


def test_a_non_owner_change_is_refused_with_a_message(ada, eve):
    space = make(ada, "chat")
    build = Build.objects.create(space=space, commit_sha="a" * 40, state="succeeded", image="i")
    page = signed_in(eve).get("/ada/chat/settings")
    assert page.status_code == 403 and "only its owner does" in page.content.decode()
    pin = signed_in(eve).post("/ada/chat/pin", {"build": build.pk})
    assert pin.status_code == 403 and not Build.objects.get(pk=build.pk).pinned
    for path, body in (
        ("variables", {"key": "K", "value": "v"}),
        ("restart", {}),
        ("sleeptime", {"seconds": 60}),
    ):
        answer = post_json(Client(), f"/api/spaces/ada/chat/{path}", body, **bearer(eve))
        assert answer.status_code == 403, path
        assert "only its owner does" in answer.json()["error"] == answer["X-Error-Message"]
    assert Space.objects.get(pk=space.pk).generation == 0 and not space.variables.exists()


@pytest.mark.parametrize("path", ["variables", "restart", "pause", "sleeptime", "rollback"])
def test_who_may_act_through_the_api(ada, path):
    make(ada, "chat")
    url = f"/api/spaces/ada/chat/{path}"
    anonymous = post_json(Client(), url, {})
    assert anonymous.status_code == 401 and "write token" in anonymous.json()["error"]
    read_only = post_json(Client(), url, {}, **bearer(ada, "read"))
    assert read_only.status_code == 403 and "read scope" in read_only.json()["error"]
    # A browser session acts with its CSRF token, never without.
    session = signed_in(ada, csrf_checks=True)
    no_csrf = post_json(session, url, {})
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.json()["error"]
    session.get("/ada/chat")
    with_csrf = post_json(session, url, {}, HTTP_X_CSRFTOKEN=session.cookies["csrftoken"].value)
    # Let in: restart and pause need nothing more; the others say what to send.
    assert with_csrf.status_code == {"restart": 200, "pause": 200}.get(path, 400), with_csrf.content
    assert "CSRF" not in with_csrf.json().get("error", "")


def test_one_principal_a_token_is_judged_alone(ada, eve):
    make(ada, "secret", visibility="private")
    owner_session = signed_in(ada)
    assert owner_session.get("/api/spaces/ada/secret").status_code == 200
    # The owner's session comes along, but the request names another caller: that caller is judged.
    assert owner_session.get("/api/spaces/ada/secret", **bearer(eve)).status_code == 404
    wrong = owner_session.get("/api/spaces/ada/secret", HTTP_AUTHORIZATION="Bearer sd_wrong")
    assert wrong.status_code == 401 and wrong.json()["error"] == "Invalid credentials in Authorization header"
    assert owner_session.get("/ada/secret", HTTP_AUTHORIZATION="Bearer sd_wrong").status_code == 403
    # whoami is about a token: a session alone is not one.
    assert owner_session.get("/api/whoami-v2").status_code == 401
    assert Client().get("/api/whoami-v2", **bearer(ada)).json()["name"] == "ada"


@pytest.mark.parametrize(
    "method, path",
    [("post", "/api/spaces/ada/chat/variables"), ("post", "/api/spaces/ada/chat/secrets"),
     ("delete", "/api/spaces/ada/chat/variables"), ("post", "/api/spaces/ada/chat/sleeptime"),
     ("post", "/api/spaces/ada/chat/rollback"), ("post", "/api/spaces/ada/chat/duplicate"),
     ("delete", "/api/repos/delete")],
)  # fmt: skip
@pytest.mark.parametrize("body", ["{not json", "[1, 2]", "\xff"])
def test_a_body_that_is_not_a_json_object_is_a_400_that_says_so(ada, method, path, body):
    make(ada, "chat")
    answer = getattr(Client(), method)(path, body, content_type="application/json", **bearer(ada))
    assert answer.status_code == 400
    assert answer.json()["error"] in (
        "The request body must be JSON",
        "The request body must be a JSON object",
    )
    assert answer["X-Error-Message"] == answer.json()["error"]
    assert Space.objects.filter(name="chat").exists()
