"""Spacedock as the OpenID provider of hf_oauth spaces, driven the way Gradio's LoginButton drives
the Hub's: authlib's client discovers it, a browser signs in and allows, the app's server trades
the code, and the ID token is checked with joserfc against the published keys."""

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from django.conf import settings
from django.contrib.auth.models import User
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from spacedock.accounts.models import AccessToken
from spacedock.spaces.models import Build, Space
from tests.conftest import gunicorn

PASSWORD = "correct horse battery staple 42"


def deployed(owner: User, name: str, **config) -> Space:
    space = Space.create(owner, name, visibility=config.pop("visibility", "public"))
    build = Build.objects.create(
        space=space, commit_sha="a" * 40, state="succeeded", config={"sdk": "gradio", **config}
    )
    Space.objects.filter(pk=space.pk).update(deployed_build=build)
    space.refresh_from_db()
    return space


@pytest.fixture
def app(live, monkeypatch):
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # the suite's server speaks http
    ada = User.objects.create_user("ada", password=PASSWORD, first_name="Ada", last_name="Lovelace")
    owner = User.objects.create_user("owner")
    return deployed(owner, "login", hf_oauth=True), ada


def browser(live) -> requests.Session:
    """A person signed in to the platform."""
    session = requests.Session()
    page = session.get(f"{live.url}/login", timeout=10)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    signed = session.post(
        f"{live.url}/login", data={"csrfmiddlewaretoken": csrf, "username": "ada", "password": PASSWORD},
        headers={"Referer": f"{live.url}/login"}, allow_redirects=False, timeout=10,
    )  # fmt: skip
    assert signed.status_code == 302
    return session


def allow(live, person: requests.Session, url: str, decision: str = "allow") -> requests.Response:
    """Opens the authorize URL as the browser does and presses a button on the consent page."""
    page = person.get(url, timeout=10)
    assert page.status_code == 200, page.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    fields = {key: unescape(value) for key, value in fields.items()}
    return person.post(
        f"{live.url}/oauth/authorize", data={**fields, "decision": decision},
        headers={"Referer": url}, allow_redirects=False, timeout=10,
    )  # fmt: skip


def client(space: Space, live) -> tuple[OAuth2Session, dict, dict]:
    env = space.env()
    metadata = requests.get(f"{live.url}/.well-known/openid-configuration", timeout=10).json()
    # Exactly what gradio/oauth.py gives authlib: the redirect is always https://<SPACE_HOST>/login/callback.
    session = OAuth2Session(
        env["OAUTH_CLIENT_ID"], env["OAUTH_CLIENT_SECRET"], scope=env["OAUTH_SCOPES"],
        redirect_uri=f"https://{env['SPACE_HOST']}/login/callback?_target_url=%2F",
    )  # fmt: skip
    return session, metadata, env


def test_sign_in_with_spacedock_as_gradio_does_it(app, live):
    space, ada = app
    session, metadata, env = client(space, live)
    assert env["OAUTH_SCOPES"] == "openid profile" and metadata["issuer"] == live.url
    assert env["OPENID_PROVIDER_URL"]  # the platform's address; tests reach it at live.url
    url, state = session.create_authorization_url(metadata["authorization_endpoint"], nonce="n-0S6_WzA2Mj")

    person = requests.Session()
    first = person.get(url, allow_redirects=False, timeout=10)
    assert first.status_code == 302 and first.headers["Location"].startswith("/login?next=")
    person = browser(live)
    back = allow(live, person, url)
    assert back.status_code == 302
    target = urlsplit(back.headers["Location"])
    # Over http here, to the space's own host, with the platform's port; the code and state ride along.
    assert target.scheme == "http" and target.hostname == space.host and target.path == "/login/callback"
    query = parse_qs(target.query)
    assert query["state"] == [state] and query["_target_url"] == ["/"]

    token = session.fetch_token(metadata["token_endpoint"], code=query["code"][0])
    keys = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
    decoded = jwt.decode(token["id_token"], keys, registry=JWSRegistry(algorithms=["RS256"]))
    claims = CodeIDToken(
        decoded.claims, decoded.header, {"iss": {"values": [metadata["issuer"]]}},
        {"nonce": "n-0S6_WzA2Mj", "client_id": env["OAUTH_CLIENT_ID"], "access_token": token["access_token"]},
    )  # fmt: skip
    claims.validate(leeway=120)
    # gr.OAuthProfile reads these four.
    assert (claims["name"], claims["preferred_username"]) == ("Ada Lovelace", "ada")
    assert claims["profile"].endswith("/ada") and "picture" in claims
    assert token["scope"] == "openid profile" and token["expires_in"] == 480 * 60

    # huggingface_hub.whoami with the app's token, and the userinfo endpoint, know ada.
    assert HfApi(endpoint=live.url).whoami(token=token["access_token"])["name"] == "ada"
    info = requests.get(
        metadata["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=10,
    )
    assert info.json()["preferred_username"] == "ada"

    # A code works once.
    with pytest.raises(Exception, match="invalid_grant"):
        session.fetch_token(metadata["token_endpoint"], code=query["code"][0])


def test_an_apps_token_says_who_and_reads_nothing(app, live):
    space, ada = app
    mine = Space.create(ada, "diary", visibility="private")
    session, metadata, _ = client(space, live)
    url, _ = session.create_authorization_url(metadata["authorization_endpoint"], nonce="x")
    code = parse_qs(urlsplit(allow(live, browser(live), url).headers["Location"]).query)["code"][0]
    token = session.fetch_token(metadata["token_endpoint"], code=code)["access_token"]
    assert AccessToken.objects.get(scope="oauth").expires is not None
    as_app = HfApi(endpoint=live.url, token=token)
    with pytest.raises(HfHubHTTPError, match="404"):
        as_app.space_info(mine.full_name)
    with pytest.raises(HfHubHTTPError, match="401"):
        as_app.create_repo("ada/evil", repo_type="space", space_sdk="gradio")
    _, write = AccessToken.issue(ada, "own")
    assert HfApi(endpoint=live.url, token=write).space_info(mine.full_name).id == "ada/diary"


def test_attacks_on_the_flow_are_refused(app, live):
    space, ada = app
    session, metadata, env = client(space, live)
    person = browser(live)
    # A redirect to another host never happens: the page says why.
    evil = OAuth2Session(
        env["OAUTH_CLIENT_ID"], redirect_uri="https://evil.example/login/callback", scope="openid"
    )
    url, _ = evil.create_authorization_url(metadata["authorization_endpoint"])
    page = person.get(url, allow_redirects=False, timeout=10)
    assert page.status_code == 400 and "must be on the space&#x27;s own host" in page.text
    # Another space's client id cannot use this space's redirect (the host is checked per client).
    other = deployed(User.objects.get(username="owner"), "other", hf_oauth=True)
    sneaky = OAuth2Session(
        other.subdomain, redirect_uri=f"https://{space.host}/login/callback", scope="openid"
    )
    page = person.get(sneaky.create_authorization_url(metadata["authorization_endpoint"])[0], timeout=10)
    assert page.status_code == 400
    # A space without hf_oauth: true cannot sign anyone in; the page says what to write.
    plain = deployed(User.objects.get(username="owner"), "plain")
    assert "OAUTH_CLIENT_ID" in plain.env()  # so a gr.LoginButton app still starts
    refused = OAuth2Session(
        plain.subdomain, redirect_uri=f"https://{plain.host}/login/callback", scope="openid"
    )
    page = person.get(refused.create_authorization_url(metadata["authorization_endpoint"])[0], timeout=10)
    assert page.status_code == 400 and "hf_oauth: true" in page.text
    # Denying sends the app an error, no code.
    url, _ = session.create_authorization_url(metadata["authorization_endpoint"], nonce="x")
    denied = allow(live, person, url, decision="deny")
    assert "error=access_denied" in denied.headers["Location"] and "code=" not in denied.headers["Location"]
    # A code from this space with a wrong secret, or traded by another client, is refused.
    url, _ = session.create_authorization_url(metadata["authorization_endpoint"], nonce="x")
    code = parse_qs(urlsplit(allow(live, person, url).headers["Location"]).query)["code"][0]
    trade = {"grant_type": "authorization_code", "code": code, "redirect_uri": session.redirect_uri}
    wrong = requests.post(
        metadata["token_endpoint"], auth=(env["OAUTH_CLIENT_ID"], "sd_oauth_guess"), data=trade, timeout=10
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    stolen = requests.post(
        metadata["token_endpoint"],
        auth=(other.subdomain, other.env()["OAUTH_CLIENT_SECRET"]),
        data=trade,
        timeout=10,
    )
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    # The client secret never shows in the space's run log.
    from spacedock.spaces.models import RunLogLine

    RunLogLine.append(space, f"env: OAUTH_CLIENT_SECRET={env['OAUTH_CLIENT_SECRET']}")
    assert env["OAUTH_CLIENT_SECRET"] not in space.run_lines.last().text


def test_asked_at_the_spaces_address_the_provider_sends_the_browser_to_the_site(live, tmp_path_factory):
    # A space's server reaches the platform at SPACEDOCK_OAUTH_PROVIDER_URL (the spaces' gateway on a
    # machine whose domain is localhost); the browser has no way there, and no session.
    door = "http://door.test:8080"
    with gunicorn(tmp_path_factory, SPACEDOCK_OAUTH_PROVIDER_URL=door) as web:
        discovery = f"{web.url}/.well-known/openid-configuration"
        asked = requests.get(discovery, headers={"Host": "door.test:8080"}, timeout=10).json()
        stranger = requests.get(discovery, headers={"Host": "evil.test"}, timeout=10)
    assert asked["issuer"] == door and asked["token_endpoint"] == f"{door}/oauth/token"
    assert asked["jwks_uri"] == f"{door}/oauth/jwks"
    assert asked["userinfo_endpoint"] == f"{door}/oauth/userinfo"
    assert asked["authorization_endpoint"] == f"{settings.SITE_URL}/oauth/authorize"
    assert stranger.status_code == 400  # the platform answers that one address more, no other
    # Asked at its own address, as before, everything is there.
    own = requests.get(f"{live.url}/.well-known/openid-configuration", timeout=10).json()
    assert own["authorization_endpoint"] == f"{live.url}/oauth/authorize"
