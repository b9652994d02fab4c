"""What a hostile page or space could do with the platform's own answers: plant or read the private
space cookie from a sibling host, run script injected into a page, navigate the top window from an
app's iframe, enumerate names through /tls/ask, or ride a placeholder secret key."""

import re
import subprocess
import sys

import requests
from django.contrib.auth.models import User

from spacedock.spaces.embed import QUERY_KEY, SALT_URL, signed_token
from spacedock.spaces.models import Build, Space
from tests.conftest import ROOT, gunicorn, process_env

KEY = "k" * 20 + "a-secret-of-more-than-32-characters"


def test_on_https_the_private_space_cookie_is_host_only_and_hsts_is_sent(live, tmp_path_factory, settings):
    ada = User.objects.create_user("ada")
    space = Space.create(ada, "secret", visibility="private")
    settings.SECRET_KEY = KEY
    link = f"/?{QUERY_KEY}={signed_token(space, ada, SALT_URL)}"
    with gunicorn(tmp_path_factory, SPACEDOCK_SCHEME="https", SPACEDOCK_SECRET_KEY=KEY) as https:
        answer = requests.get(
            f"{https.url}/_runner/auth",
            headers={"Host": space.host, "X-Forwarded-Uri": link, "X-Forwarded-Proto": "https"},
            allow_redirects=False,
            timeout=10,
        )
        assert answer.status_code == 302
        cookie = answer.headers["Set-Cookie"]
        assert cookie.startswith("__Host-spacedock-space=") and "Secure" in cookie and "Path=/" in cookie
        assert "Domain=" not in cookie
        value = cookie.split(";", 1)[0].split("=", 1)[1]
        back = requests.get(
            f"{https.url}/_runner/auth",
            headers={
                "Host": space.host,
                "Cookie": f"__Host-spacedock-space={value}",
                "X-Forwarded-Proto": "https",
            },
            timeout=10,
        )
        assert back.status_code == 200
        # The same value under the old name, as a sibling host could set it, opens nothing.
        planted = requests.get(
            f"{https.url}/_runner/auth",
            headers={"Host": space.host, "Cookie": f"spacedock-space={value}", "X-Forwarded-Proto": "https"},
            timeout=10,
        )
        assert planted.status_code == 403
        page = requests.get(f"{https.url}/login", headers={"X-Forwarded-Proto": "https"}, timeout=10)
        assert page.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_pages_carry_a_csp_whose_nonce_is_on_every_inline_script(live):
    ada = User.objects.create_user("ada")
    space = Space.create(ada, "demo")
    build = Build.objects.create(space=space, commit_sha="a" * 40, state="succeeded", image="i")
    Space.objects.filter(pk=space.pk).update(deployed_build=build, stage="RUNNING", head_sha="a" * 40)
    for path in ("/", "/ada/demo", "/ada/demo/logs", "/login"):
        page = requests.get(f"{live.url}{path}", timeout=10)
        policy = page.headers["Content-Security-Policy"]
        nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
        assert "script-src 'self' 'nonce-" in policy and "unsafe-inline" not in policy.split("style-src")[0]
        scripts = re.findall(r"<script([^>]*)>", page.text)
        assert all(f'nonce="{nonce}"' in attrs or "src=" in attrs for attrs in scripts), (path, scripts)
    frame = re.search(r"<iframe[^>]*>", requests.get(f"{live.url}/ada/demo", timeout=10).text).group(0)
    sandbox = re.search(r'sandbox="([^"]*)"', frame).group(1).split()
    assert {"allow-scripts", "allow-same-origin", "allow-forms", "allow-popups", "allow-downloads"} <= set(
        sandbox
    )
    assert not any(flag.startswith("allow-top-navigation") for flag in sandbox)


def test_tls_ask_answers_only_the_local_caddy(live):
    ada = User.objects.create_user("ada")
    space = Space.create(ada, "demo")
    direct = requests.get(f"{live.url}/tls/ask", params={"domain": space.host}, timeout=10)
    assert direct.status_code == 200  # Caddy's question, from loopback
    proxied = requests.get(
        f"{live.url}/tls/ask",
        params={"domain": space.host},
        headers={"X-Forwarded-For": "203.0.113.7"},
        timeout=10,
    )
    assert proxied.status_code == 403 and "only the local Caddy" in proxied.text


def test_a_placeholder_secret_key_stops_an_https_start():
    for key in ("change-me", "short-but-random"):
        check = subprocess.run(
            [sys.executable, "manage.py", "check"],
            cwd=ROOT, capture_output=True, text=True,
            env=process_env(
                SPACEDOCK_SCHEME="https",
                SPACEDOCK_SECRET_KEY=key,
                DJANGO_SETTINGS_MODULE="spacedock.settings",
            ),
        )  # fmt: skip
        assert (
            check.returncode != 0
            and "SPACEDOCK_SECRET_KEY is a placeholder or shorter than 32" in check.stderr
        )
