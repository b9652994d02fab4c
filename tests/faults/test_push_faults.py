"""Abuse of the push path, with the real worker: big pushes, links out of the repo, names built to
escape, and a flood of pushes to one space."""

import hashlib
import http.client
import os
import subprocess
import uuid
from pathlib import Path

from django.conf import settings

from builder.images import image_tag
from spacedock.spaces.models import Build, Space
from tests.conftest import wait_until
from tests.faults.helpers import assert_platform_sound, docker_space, leftovers, log_text

BIG_MB = 200


def done(sha: str, seconds: float = 300) -> Build:
    return wait_until(
        lambda: Build.objects.filter(commit_sha=sha).exclude(state__in=Build.ACTIVE).first(),
        seconds,
        f"the build of {sha[:7]}",
    )


def gunicorn_workers(port: int) -> list[int]:
    """The pids of the gunicorn workers serving the test server: forks of its master, same command."""
    ours = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if b"gunicorn" in cmd and f"127.0.0.1:{port}".encode() in cmd:
            ours[int(proc.name)] = ppid
    workers = [pid for pid, ppid in ours.items() if ppid in ours]
    assert workers, f"no gunicorn workers found for port {port}"
    return workers


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


def test_a_200_mb_push_is_stored_byte_for_byte_and_builds(
    live, worker, token_for, make_repo, docker_client, tmp_path
):
    token = token_for("alice")
    repo = make_repo({"README.md": "---\ntitle: Big\nsdk: static\n---\n", "index.html": "<h1>big</h1>\n"})
    # Random data does not compress: the pack is as big as the files. So zlib's work on it buys
    # nothing, and blobs need no delta search: the client skips both (the pack is no smaller).
    repo.git("config", "core.compression", "0")
    repo.git("config", "core.bigFileThreshold", "1m")
    # In 2 MB files, the pack holds over 100 objects (git's receive.unpackLimit): the server keeps it
    # as sent. Four 50 MB files were unpacked into loose objects, which every clone compressed and
    # delta-searched again (a 200 MB clone took ~45 s instead of ~6 s).
    digests = {}
    for i in range(BIG_MB // 2):
        path = repo.path / "data" / f"part{i}.bin"
        path.parent.mkdir(exist_ok=True)
        data = os.urandom(2 * 1024 * 1024)
        path.write_bytes(data)
        digests[f"data/part{i}.bin"] = hashlib.sha256(data).hexdigest()
    sha = repo.commit("200 MB of data")

    pushed = repo.push(live.git_url("alice", "big", token))
    assert pushed.returncode == 0, pushed.stderr
    assert "queued" in pushed.stderr

    # gunicorn streamed the pack to git: no worker held it in memory.
    for pid in gunicorn_workers(live.port):
        assert peak_rss_mb(pid) < BIG_MB / 2, f"gunicorn worker {pid} peaked at {peak_rss_mb(pid):.0f} MB"

    clone = tmp_path / "clone"
    cloned = subprocess.run(
        ["git", "clone", "--quiet", live.git_url("alice", "big"), str(clone)], capture_output=True, text=True
    )
    assert cloned.returncode == 0, cloned.stderr
    for name, digest in digests.items():
        with open(clone / name, "rb") as f:
            assert hashlib.file_digest(f, "sha256").hexdigest() == digest, name

    build = done(sha)
    assert build.state == "succeeded", build.error + log_text(build)
    assert Space.objects.get(name="big").stage == "APP_STARTING"
    docker_client.images.remove(build.image, force=True)  # 200 MB less on the disk
    assert_platform_sound(live, docker_client)


def test_links_out_of_the_repo_are_stored_but_never_followed(
    live, worker, token_for, make_repo, docker_client
):
    repo = make_repo({"README.md": "---\ntitle: Links\nsdk: static\n---\n", "index.html": "<h1>links</h1>\n"})
    os.symlink("/etc/passwd", repo.path / "leak")
    os.symlink("../../..", repo.path / "up")
    os.symlink("index.html", repo.path / "home.html")  # a link inside the repo is fine
    sha = repo.commit("links")
    pushed = repo.push(live.git_url("alice", "links", token_for("alice")))
    assert pushed.returncode == 0, pushed.stderr

    build = done(sha)
    assert build.state == "succeeded", build.error + log_text(build)
    log = log_text(build)
    assert "Warning: left out leak" in log and "Warning: left out up" in log

    # In the image: no copy of the host's file, no way up; the inner link works.
    listing = docker_client.containers.run(
        build.image,
        [
            "python3", "-c",
            "import os, json; d='/home/user/app'; "
            "print(json.dumps({n: [os.path.islink(os.path.join(d, n)), os.path.exists(os.path.join(d, n))] "
            "for n in sorted(os.listdir(d))}))",
        ],
        remove=True, network_disabled=True,
    ).decode()  # fmt: skip
    entries = __import__("json").loads(listing)
    assert "leak" not in entries and "up" not in entries
    assert entries["home.html"] == [True, True]
    host_passwd = Path("/etc/passwd").read_bytes()
    saved = b"".join(docker_client.images.get(build.image).save())
    assert host_passwd not in saved

    # The files tab shows the link's text, never the file it points to.
    page = http_get(live.port, "/alice/links/files/leak")
    assert host_passwd.decode().splitlines()[0] not in page[1]
    assert_platform_sound(live, docker_client)


def http_get(port: int, path: str, headers: dict | None = None) -> tuple[int, str]:
    """A request with the path exactly as given: no client-side clean-up of dots or escapes."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        conn.endheaders()
        answer = conn.getresponse()
        return answer.status, answer.read().decode("utf-8", "replace")
    finally:
        conn.close()


ESCAPES = [
    "..", "%2e%2e", "%2E%2E", ".%2e", "..%2f..%2fetc", "%2fetc%2fpasswd", "..%5c..%5cetc",
    "%00", "a%00b", "x" * 300, "\u0430lice", "%D0%B0lice", "%C0%AE%C0%AE", ".git", "-rf", "~root",
]  # fmt: skip


def _outside_snapshot() -> set[str]:
    """Every path in the data folder that is not a repository or a build's, nor the storage of a
    service that writes on its own schedule (Caddy cleans its storage, the registry takes pushes)."""
    root = Path(settings.DATA_DIR)
    skip = {"repos", "builds", "pytest", "broker", "downloads", "caddy", "registry"}
    return {
        str(p)
        for p in root.rglob("*")
        if p.relative_to(root).parts and p.relative_to(root).parts[0] not in skip
    }


def test_names_and_paths_built_to_escape_get_400_or_404(live, token_for, make_repo):
    from base64 import b64encode

    token = token_for("alice")
    repo = make_repo()
    assert repo.push(live.git_url("alice", "real", token)).returncode == 0
    auth = {"Authorization": "Basic " + b64encode(f"alice:{token}".encode()).decode()}
    before = _outside_snapshot()
    repos_before = sorted(str(p) for p in Path(settings.REPOS_DIR).rglob("*.git"))
    secret_line = Path("/etc/passwd").read_text().splitlines()[0]

    paths = []
    for bad in ESCAPES:
        bad_q = bad.replace("\u0430", "%D0%B0")
        paths += [
            f"/spaces/alice/{bad_q}/info/refs?service=git-receive-pack",
            f"/spaces/{bad_q}/real/info/refs?service=git-upload-pack",
            f"/spaces/alice/{bad_q}/info/refs?service=git-upload-pack",
            f"/api/spaces/alice/{bad_q}",
            f"/api/spaces/{bad_q}/real/runtime",
            f"/alice/{bad_q}",
            f"/alice/real/files/{bad_q}",
            f"/alice/real/files/{bad_q}/{bad_q}/etc/passwd",
            f"/embed/alice/{bad_q}",
        ]
    paths += [
        "/alice/real/files/../../../../etc/passwd",
        "/alice/real/files/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/alice/real/files//etc/passwd",
        "/alice/real/files/%2Fetc%2Fpasswd",
        "/spaces/alice/real/../../../../etc/passwd",
        "/spaces/alice/real.git/info/refs/../../../HEAD",
        "/api/spaces/alice/real/logs/..%2f..%2f..%2fetc%2fpasswd",
        "/?q=%00",
        "/api/spaces?search=%00",
        "/alice/real/files?path=%00",
    ]
    answers = {}
    for path in paths:
        status, body = http_get(live.port, path, auth)
        answers[path] = status
        assert secret_line not in body, path
        assert str(settings.REPOS_DIR) not in body, path  # no server paths in errors either
    wrong = {p: s for p, s in answers.items() if s not in (400, 404)}
    assert not wrong, wrong

    # A push to a name built to escape is refused before anything is made on disk.
    for bad in ("..", "%2e%2e", "..%2f..%2fescaped", "\u0430lice-space"):
        result = repo.git("push", f"{live.git_url('alice', bad, token)}", "main", check=False)
        assert result.returncode != 0
        # git itself folds "/.." out of a URL, so that one reaches no space at all: "not found".
        assert any(why in result.stderr for why in ("400", "not a space name", "not found")), result.stderr
    assert _outside_snapshot() == before
    assert sorted(str(p) for p in Path(settings.REPOS_DIR).rglob("*.git")) == repos_before
    assert not list(Path(settings.REPOS_DIR).parent.glob("escaped*"))
    assert [s.name for s in Space.objects.all()] == ["real"]


def test_a_flood_of_pushes_ends_with_the_last_built_and_the_rest_cancelled(
    live, worker, token_for, make_repo, docker_client
):
    token = token_for("alice")
    url = live.git_url("alice", "flood", token)
    repo = make_repo(
        docker_space(f'FROM BASE\nRUN echo {uuid.uuid4().hex} && sleep 15\nCMD ["sleep", "1"]\n')
    )
    shas = [repo.git("rev-parse", "HEAD").stdout.strip()]
    assert repo.push(url).returncode == 0
    for i in range(9):
        repo.write(
            docker_space(f'FROM BASE\nRUN echo {uuid.uuid4().hex} {i} && sleep 15\nCMD ["sleep", "1"]\n')
        )
        shas.append(repo.commit(f"push {i}"))
        assert repo.push(url).returncode == 0

    last = done(shas[-1], 300)
    assert last.state == "succeeded", last.error + log_text(last)
    builds = {b.commit_sha: b for b in Build.objects.filter(space__name="flood")}
    assert set(builds) == set(shas)
    assert [builds[s].state for s in shas[:-1]] == ["cancelled"] * 9
    assert all("superseded" in builds[s].error for s in shas[:-1])
    space = Space.objects.get(name="flood")
    assert space.deployed_build == last and space.stage == "APP_STARTING"
    for sha in shas[:-1]:
        wait_until(lambda b=builds[sha]: not leftovers(b, docker_client), 60, f"build {sha[:7]} to clean up")
    tags = {t for image in docker_client.images.list() for t in image.tags}
    assert image_tag(space, shas[-1]) in tags
    assert not {image_tag(space, s) for s in shas[:-1]} & tags
    assert_platform_sound(live, docker_client)


def test_database_restart_is_survived(live, worker, token_for, make_repo, docker_client):
    """Restarts this machine's Postgres (other test runs on it see a short outage: run it rarely)."""
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        # SQLite has no server to restart; the same test then restarts nothing, and still checks a push.
        restart = None
    else:
        version = sorted(os.listdir("/etc/postgresql"))[-1]
        restart = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "fast"]
    token = token_for("alice")
    # A build that takes a while, so that Postgres restarts in the middle of it.
    serve = 'CMD ["python3", "-m", "http.server", "8000"]'
    dockerfile = f"FROM BASE\nRUN echo {uuid.uuid4().hex} && sleep 15\n{serve}\n"
    repo = make_repo(docker_space(dockerfile))
    first = repo.git("rev-parse", "HEAD").stdout.strip()
    assert repo.push(live.git_url("alice", "before", token)).returncode == 0
    assert live.api("spaces/alice/before").status_code == 200

    if restart:
        # While the first build runs: it keeps building, and its log and outcome catch up.
        building = Build.objects.filter(commit_sha=first, state="building")
        wait_until(building.exists, 120, "the build")
        subprocess.run(restart, check=True, capture_output=True, timeout=120)
        wait_until(
            lambda: subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"]).returncode == 0, 60, "Postgres"
        )
    from django.db import connection

    connection.close()  # this test process's own connection died with the server
    survived = done(first, 300)
    assert survived.state == "succeeded", survived.error + log_text(survived)
    assert "==> Built" in log_text(survived)

    # gunicorn checks its connections before use (CONN_HEALTH_CHECKS): the next requests work.
    assert wait_until(
        lambda: live.api("spaces/alice/before").status_code == 200, 30, "the API after the restart"
    )
    repo.write({"index.html": "after the restart\n"})
    sha = repo.commit("after the restart")
    pushed = repo.push(live.git_url("alice", "before", token))
    assert pushed.returncode == 0, pushed.stderr
    build = done(sha, 300)  # the worker's connection recovers too
    assert build.state == "succeeded", build.error + log_text(build)
    assert_platform_sound(live, docker_client)
