"""git push and clone over smart HTTP, with the real git client against gunicorn."""

import os
import stat
import subprocess
import sys

import pytest
import requests

from spacedock.gitserver.receive import HookServer
from spacedock.gitserver.repo import path_for
from spacedock.gitserver.views import HOOKS_DIR
from spacedock.spaces.models import Build, Space


def test_first_push_creates_the_space_and_queues_a_build(live, token_for, make_repo, tmp_path):
    token = token_for("alice")
    repo = make_repo()
    repo.write({"data/weights.bin": os.urandom(300_000)})
    sha = repo.commit("add weights")

    pushed = repo.push(live.git_url("alice", "hello", token))

    assert pushed.returncode == 0, pushed.stderr
    assert "build" in pushed.stderr and "queued" in pushed.stderr
    assert "alice-hello.localhost" in pushed.stderr

    clone = tmp_path / "clone"
    cloned = repo.git("clone", "--quiet", live.git_url("alice", "hello"), str(clone), check=False)
    assert cloned.returncode == 0, cloned.stderr
    for name in ("README.md", "app.py", "data/weights.bin"):
        assert (clone / name).read_bytes() == (repo.path / name).read_bytes()

    info = live.api("spaces/alice/hello").json()
    assert info["id"] == "alice/hello"
    assert info["sha"] == sha
    assert info["subdomain"] == "alice-hello"
    assert info["cardData"]["title"] == "Hello"
    assert info["cardData"]["tags"] == ["demo", "text"]
    # Queued, or already taken by a build worker if one runs in this session.
    assert info["build"]["state"] in ("queued", "building", "succeeded")
    assert info["build"]["commit"] == sha
    assert live.api("spaces/alice/hello/runtime").json()["stage"] in ("BUILDING", "APP_STARTING")

    page = requests.get(f"{live.url}/alice/hello", timeout=10)
    assert page.status_code == 200
    assert "Hello" in page.text and sha[:7] in page.text
    gallery = requests.get(live.url, timeout=10).text
    assert 'href="/alice/hello"' in gallery and "Says hello" in gallery


def test_clone_url_may_end_in_dot_git(live, token_for, make_repo, tmp_path):
    repo = make_repo()
    assert repo.push(live.git_url("alice", "hello", token_for("alice"))).returncode == 0
    cloned = repo.git(
        "clone", "--quiet", live.git_url("alice", "hello") + ".git", str(tmp_path / "c"), check=False
    )
    assert cloned.returncode == 0, cloned.stderr
    assert (tmp_path / "c" / "app.py").exists()


def test_push_without_token_is_refused_with_how_to(live, make_repo):
    pushed = make_repo().push(live.git_url("alice", "hello"))
    assert pushed.returncode != 0
    assert "could not read Username" in pushed.stderr  # git was asked for credentials
    assert not Space.objects.exists()

    # What git shows once it has asked, and what any HTTP client reads.
    response = requests.get(f"{live.url}/spaces/alice/hello/info/refs?service=git-receive-pack", timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert "Authentication required to push" in response.text and "issue_token" in response.text


def test_push_with_wrong_token_is_refused(live, token_for, make_repo):
    token_for("alice")
    pushed = make_repo().push(live.git_url("alice", "hello", "sd_not-a-real-token"))
    assert pushed.returncode != 0
    assert "Authentication failed" in pushed.stderr
    assert not Space.objects.exists()


def test_revoked_token_no_longer_pushes(live, token_for, make_repo):
    from spacedock.accounts.models import AccessToken

    token = token_for("alice")
    AccessToken.objects.get(user__username="alice").revoke()
    pushed = make_repo().push(live.git_url("alice", "hello", token))
    assert pushed.returncode != 0 and "Authentication failed" in pushed.stderr


def test_read_token_cannot_push(live, token_for, make_repo):
    pushed = make_repo().push(live.git_url("alice", "hello", token_for("alice", scope="read")))
    assert pushed.returncode != 0
    assert "read-only" in pushed.stderr
    assert "403" in pushed.stderr or "read-only" in pushed.stderr


def test_push_to_someone_elses_space_is_forbidden(live, token_for, make_repo):
    alice = token_for("alice")
    bob = token_for("bob")
    repo = make_repo()
    assert repo.push(live.git_url("alice", "hello", alice)).returncode == 0
    head = Space.objects.get().head_sha

    repo.write({"app.py": "print('pwned')\n"})
    repo.commit("bob was here")
    pushed = repo.push(live.git_url("alice", "hello", bob, user="bob"))

    assert pushed.returncode != 0
    assert "it belongs to alice" in pushed.stderr
    assert Space.objects.get().head_sha == head
    assert Build.objects.count() == 1


def test_cannot_create_a_space_under_another_name(live, token_for, make_repo):
    pushed = make_repo().push(live.git_url("alice", "hello", token_for("bob"), user="bob"))
    assert pushed.returncode != 0
    assert "only create spaces under your own name" in pushed.stderr
    assert not Space.objects.exists()


@pytest.mark.parametrize(
    "name", ["a..b", "-dash", ".hidden", "x" * 97, "with%20space", "ok.git.git", "semi;colon"]
)
def test_bad_names_are_refused(live, token_for, make_repo, name):
    pushed = make_repo().push(live.git_url("alice", name, token_for("alice")))
    assert pushed.returncode != 0
    assert not Space.objects.exists()
    assert "not a space name" in pushed.stderr or "404" in pushed.stderr


@pytest.mark.parametrize(
    "path", ["alice/../etc/info/refs", "alice/..%2Fetc/info/refs", "../alice/x/info/refs"]
)
def test_paths_that_climb_out_are_refused(live, token_for, path):
    token_for("alice")
    response = requests.get(
        f"{live.url}/spaces/{path}?service=git-upload-pack", timeout=10, allow_redirects=False
    )
    assert response.status_code in (400, 404)
    assert not any(p.name == "etc" for p in live_repos())


def live_repos():
    from django.conf import settings

    root = settings.REPOS_DIR
    return list(root.rglob("*")) if root.exists() else []


def test_private_space_is_hidden_from_others(live, token_for, make_repo, tmp_path):
    alice = token_for("alice")
    bob = token_for("bob")
    repo = make_repo()
    assert repo.push(live.git_url("alice", "secret", alice)).returncode == 0
    Space.objects.filter(name="secret").update(visibility="private")

    anonymous = repo.git("clone", live.git_url("alice", "secret"), str(tmp_path / "a"), check=False)
    assert anonymous.returncode != 0
    as_bob = repo.git(
        "clone", live.git_url("alice", "secret", bob, user="bob"), str(tmp_path / "b"), check=False
    )
    assert as_bob.returncode != 0 and "not found" in as_bob.stderr
    as_alice = repo.git("clone", live.git_url("alice", "secret", alice), str(tmp_path / "c"), check=False)
    assert as_alice.returncode == 0, as_alice.stderr

    assert requests.get(f"{live.url}/alice/secret", timeout=10).status_code == 404
    assert live.api("spaces/alice/secret").status_code == 404
    assert live.api("spaces/alice/secret", headers={"Authorization": f"Bearer {bob}"}).status_code == 404
    assert live.api("spaces/alice/secret", headers={"Authorization": f"Bearer {alice}"}).status_code == 200
    assert "secret" not in requests.get(live.url, timeout=10).text


def test_push_of_tens_of_mib_streams_through(live, token_for, make_repo, tmp_path):
    # Over 1 MiB git sends the pack chunked, with no Content-Length (docs/architecture.md, traps).
    repo = make_repo()
    blob = os.urandom(40 * 1024 * 1024)
    repo.write({"model.bin": blob})
    repo.commit("a big model")

    pushed = repo.push(live.git_url("alice", "big", token_for("alice")))
    assert pushed.returncode == 0, pushed.stderr
    # The server keeps the pack as pushed (no loose objects), so a clone or a build sends it on
    # without compressing the model again.
    stored = repo.git("--git-dir", str(path_for("alice", "big")), "count-objects", "-v").stdout
    assert "\ncount: 0\n" in "\n" + stored and "\npacks: 1\n" in stored, stored

    cloned = repo.git("clone", "--quiet", live.git_url("alice", "big"), str(tmp_path / "big"), check=False)
    assert cloned.returncode == 0, cloned.stderr
    assert (tmp_path / "big" / "model.bin").read_bytes() == blob


def test_a_tag_is_stored_and_a_branch_builds_its_preview(live, token_for, make_repo):
    token = token_for("alice")
    repo = make_repo()
    assert repo.push(live.git_url("alice", "hello", token)).returncode == 0
    repo.git("tag", "v1")
    tagged = repo.git("push", live.git_url("alice", "hello", token), "v1", check=False)
    assert tagged.returncode == 0, tagged.stderr
    assert Build.objects.count() == 1
    # git shows the hook's words: a tag is kept, not deployed, and how to deploy it.
    assert "tag v1 is stored, not built: only branches build" in tagged.stderr
    assert "git push <remote> v1:main" in tagged.stderr
    repo.git("checkout", "--quiet", "-b", "experiment")
    repo.write({"app.py": "print('wip')\n"})
    repo.commit("wip")
    pushed = repo.git("push", live.git_url("alice", "hello", token), "experiment", check=False)
    assert pushed.returncode == 0, pushed.stderr
    assert "the preview of experiment will be at http://alice-hello--experiment.localhost" in pushed.stderr
    main, branch = Build.objects.order_by("pk")
    assert branch.ref == "refs/heads/experiment" and main.state != "cancelled"


def test_newer_push_cancels_the_older_build(live, token_for, make_repo, settings):
    # The first build sleeps, so it is still queued or building when the second push lands,
    # whether or not a worker runs in this session.
    token = token_for("alice")
    slow = f"FROM {settings.BASE_IMAGE}\nRUN echo {os.urandom(8).hex()} && sleep 300\n"
    repo = make_repo({"README.md": "---\nsdk: docker\n---\n", "Dockerfile": slow})
    first = repo.git("rev-parse", "HEAD").stdout.strip()
    assert repo.push(live.git_url("alice", "hello", token)).returncode == 0
    repo.write({"Dockerfile": f"FROM {settings.BASE_IMAGE}\n"})
    second = repo.commit("v2")
    assert repo.push(live.git_url("alice", "hello", token)).returncode == 0

    states = {b.commit_sha: b.state for b in Build.objects.all()}
    assert states[first] == "cancelled"
    assert states[second] != "cancelled"
    assert f"superseded by {second[:7]}" in Build.objects.get(commit_sha=first).error


def run_hook(name: str, socket_path: str, stdin: str) -> subprocess.CompletedProcess:
    """git's hook as git http-backend runs it, with the environment the git server gives it."""
    env = {
        "PATH": os.environ["PATH"],
        "SPACEDOCK_PYTHON": sys.executable,
        "SPACEDOCK_HOOK_SOCKET": socket_path,
    }
    return subprocess.run([str(HOOKS_DIR / name)], input=stdin, env=env, capture_output=True, text=True)


@pytest.mark.fast
def test_a_hook_that_cannot_reach_the_server_refuses_the_push(tmp_path):
    # Nothing listens there: the push is refused, never let in unchecked.
    pushed = run_hook("pre-receive", str(tmp_path / "gone.sock"), f"{'0' * 40} {'1' * 40} refs/heads/main\n")
    assert pushed.returncode != 0
    assert "the pre-receive hook could not reach the server" in pushed.stderr


def test_a_push_the_server_fails_to_check_is_refused_and_says_so(transactional_db):
    # The space went away between the request's checks and its hooks (deleted meanwhile).
    hooks = HookServer(space_id=10**9)
    try:
        # Only this user may reach the socket: its folder is private.
        assert stat.S_IMODE(hooks.folder.stat().st_mode) == 0o700
        pushed = run_hook(
            "pre-receive", hooks.env()["SPACEDOCK_HOOK_SOCKET"], f"{'0' * 40} {'1' * 40} refs/heads/main\n"
        )
    finally:
        hooks.close()
    assert pushed.returncode != 0
    assert "the server failed to process this push; the operator's log has more" in pushed.stderr
    assert not hooks.folder.exists()
