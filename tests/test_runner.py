"""The runner with real Docker, real Caddy and gradio_client through Caddy at the space's subdomain."""

import json
import subprocess
import threading
import time
from datetime import timedelta

import pytest
import requests
from django.conf import settings
from django.utils import timezone
from gradio_client import Client
from urllib3.util import Retry

from runner.models import Runtime
from spacedock.accounts.models import AccessToken
from spacedock.spaces.embed import space_embed_url
from spacedock.spaces.models import Space
from tests.runner_fixtures import (
    APP_DOCKERFILE,
    DOCKER,
    GREETER,
    cgroup_memory,
    deployed,
    docker_build,
    docker_ids,
    publish,
    runner_loop,
    wait_for,
)


def inspect(container_id: str) -> dict:
    out = subprocess.run([DOCKER, "inspect", container_id], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]


def run_log(server, space: Space, until: str) -> str:
    text = ""
    url = f"{server.url}/api/spaces/{space.full_name}/logs/run"
    with requests.get(url, stream=True, timeout=30) as response:
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                text += json.loads(line[6:])["data"]
                if until in text:
                    break
    return text


PROBE = """
import socket, sys, os
results = {}
for name, host, port in json_targets:
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect((host, port)); results[name] = "connected"
    except OSError as e:
        results[name] = type(e).__name__
    finally:
        s.close()
results["docker.sock"] = os.path.exists("/var/run/docker.sock") or os.path.exists("/run/docker.sock")
print(json.dumps(results))
"""


def test_deploy_predict_isolate_redeploy_rollback(runner, proxy, images, server, resolve_localhost):
    space = deployed("ada", "hello", images.hello)
    assert space.stage == "APP_STARTING"
    runner.converge()
    space.refresh_from_db()
    assert space.stage == "RUNNING", space.stage_message
    first_build = space.deployed_build

    # The visitor's view: gradio_client through Caddy at the subdomain.
    client = Client(proxy.url(space), verbose=False)
    assert client.predict("Ada", api_name="/predict") == "Hello, Ada!"
    assert server.api(f"spaces/{space.full_name}/runtime").json()["stage"] == "RUNNING"
    assert "Running on local URL" in run_log(server, space, "Running on local URL")
    # A generator's outputs stream through Caddy as they are made, not all at the end.
    arrivals = []
    for output in client.submit("4", api_name="/count"):
        arrivals.append((output, time.monotonic()))
    assert [o for o, _ in arrivals] == ["0", "1", "2", "3"]
    assert arrivals[-1][1] - arrivals[0][1] > 0.5, arrivals
    # Uploads have no small cap on the way through Caddy.
    upload = requests.post(
        f"http://127.0.0.1:{proxy.port}/gradio_api/upload",
        headers={"Host": space.host},
        files={"files": ("big.bin", b"\0" * (30 * 2**20))},
        timeout=60,
    )
    assert upload.status_code == 200 and upload.json()[0].endswith("big.bin"), upload.text[:300]

    # Hardened: unprivileged, no capabilities, limits, loopback only, no Docker socket.
    info = inspect(space.container_id)
    host = info["HostConfig"]
    assert info["Config"]["User"] == "1000:1000"
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges:true" in host["SecurityOpt"]
    assert host["Memory"] == settings.RUN_MEMORY_MB * 2**20 and host["PidsLimit"] == settings.RUN_PIDS
    assert host["NanoCpus"] == int(settings.RUN_CPUS * 1e9)
    assert {b["HostIp"] for b in host["PortBindings"]["7860/tcp"]} == {"127.0.0.1"}
    assert not any("docker.sock" in m["Source"] for m in info["Mounts"])
    assert info["Config"]["Labels"]["spacedock.instance"] == settings.INSTANCE
    assert "SPACE_ID=ada/hello" in info["Config"]["Env"]

    # Isolated: nothing of the platform answers from inside, not even a port the host opens on 0.0.0.0.
    network = next(iter(info["NetworkSettings"]["Networks"].values()))
    gateway = network["Gateway"]
    bait = __import__("socket").socket()
    bait.bind(("0.0.0.0", 0))
    bait.listen()
    targets = [
        ("postgres-gateway", gateway, 5432),
        ("postgres-loopback", "127.0.0.1", 5432),
        ("redis-gateway", gateway, 6379),
        ("caddy-admin", gateway, int(proxy.admin.rsplit(":", 1)[1])),
        ("caddy-proxy", gateway, proxy.port),
        ("gunicorn", gateway, settings.WEB_PORT),
        ("host-0.0.0.0-port", gateway, bait.getsockname()[1]),
        ("docker-bridge-host", "198.18.0.1", bait.getsockname()[1]),
    ]
    script = f"import json\njson_targets = {targets!r}\n{PROBE}"
    out = subprocess.run(
        [DOCKER, "exec", space.container_id, "python", "-c", script],
        capture_output=True,
        text=True,
        check=True,
    )
    bait.close()
    reached = json.loads(out.stdout)
    assert reached.pop("docker.sock") is False
    assert "connected" not in reached.values(), reached

    # Redeploy under a steady stream of requests: none is lost.
    counts = {"ok": 0, "bad": []}
    stop = threading.Event()

    def stream():
        session = requests.Session()
        # Like a browser (RFC 9112 9.3.1): a GET sent on a kept-alive connection that the server closed
        # as idle (Caddy does so to its old server's idle connections on a config load) is sent again.
        # Only failures before any response are retried: a 502 or a cut response still counts as lost.
        retry = Retry(total=2, connect=0, read=2, status=0, other=0, allowed_methods=["GET"])
        session.mount("http://", requests.adapters.HTTPAdapter(max_retries=retry))
        while not stop.is_set():
            try:
                response = session.get(
                    f"http://127.0.0.1:{proxy.port}/config", headers={"Host": space.host}, timeout=30
                )
                if response.status_code == 200:
                    counts["ok"] += 1
                else:
                    counts["bad"].append(response.status_code)
            except requests.RequestException as exc:
                counts["bad"].append(repr(exc))

    thread = threading.Thread(target=stream)
    thread.start()
    time.sleep(1)
    old_container = space.container_id
    space = publish(space, images.hello2)
    assert space.stage == "RUNNING_APP_STARTING"
    runner.converge()
    time.sleep(1)
    stop.set()
    thread.join()
    space.refresh_from_db()
    assert space.stage == "RUNNING" and space.container_id != old_container
    assert counts["bad"] == [] and counts["ok"] > 50, counts
    assert Client(proxy.url(space), verbose=False).predict("Ada", api_name="/predict") == "Howdy, Ada!"
    assert docker_ids(space.pk) == [space.container_id[:12]]

    # A container an operator starts by hand from the space's image carries the image's
    # instance and space labels; the runner neither adopts nor removes it.
    by_hand = subprocess.run(
        [DOCKER, "run", "-d", "--label", f"spacedock.instance={settings.INSTANCE}",
         "--label", f"spacedock.space={space.pk}", space.deployed_build.image, "sleep", "300"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    try:
        runner.converge()
        assert inspect(by_hand)["State"]["Running"]
        space.refresh_from_db()
        assert space.stage == "RUNNING" and space.container_id != by_hand
    finally:
        subprocess.run([DOCKER, "rm", "-f", by_hand], capture_output=True)

    # A new version that crashes leaves the running one serving, and says why.
    serving = space.container_id
    space = publish(space, images.crashes)
    runner.converge()
    space.refresh_from_db()
    assert space.stage == "RUNNING" and space.container_id == serving
    assert "did not start" in space.stage_message and "boom: the model file is missing" in space.stage_message
    assert proxy.get(space.host, "/config").status_code == 200

    # Rollback to the first build, from the API, with the same swap.
    _, token = AccessToken.issue(space.owner, "test")
    response = requests.post(
        f"{server.url}/api/spaces/{space.full_name}/rollback",
        json={"build": first_build.pk},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    runner.converge()
    space.refresh_from_db()
    assert space.stage == "RUNNING" and space.running_image == images.hello
    assert Client(proxy.url(space), verbose=False).predict("Ada", api_name="/predict") == "Hello, Ada!"


@pytest.mark.parametrize(
    "image_name, clue",
    [
        ("crashes", "boom: the model file is missing"),
        ("never_listens", "warming up forever"),
        ("crashes_later", "segfault-ish"),
    ],
)
def test_failures_end_in_runtime_error_with_log_tail(runner, proxy, images, server, image_name, clue):
    space = deployed("bob", image_name.replace("_", "-"), getattr(images, image_name))
    Space.objects.filter(pk=space.pk).update(startup_duration_timeout=4)
    runner.converge()
    if image_name == "crashes_later":
        # It answered, so it ran; then Docker restarts it with backoff until the retries are spent.
        space.refresh_from_db()
        assert space.stage == "RUNNING"
        wait_for(
            lambda: runner.converge(1) or Space.objects.get(pk=space.pk).stage == "RUNTIME_ERROR",
            60,
            what=lambda: (
                Space.objects.get(pk=space.pk).stage,
                [inspect(c)["State"] | {"rc": inspect(c)["RestartCount"]} for c in docker_ids(space.pk)],
            ),
        )
    space.refresh_from_db()
    assert space.stage == "RUNTIME_ERROR"
    assert clue in space.stage_message
    if image_name == "crashes":  # SystemExit("...") exits with 1, also once Docker restarted it
        assert "exited with code 1 " in space.stage_message, space.stage_message
    runtime = server.api(f"spaces/{space.full_name}/runtime").json()
    assert runtime["stage"] == "RUNTIME_ERROR" and clue in runtime["errorMessage"]
    # No loop: more passes start nothing new.
    runner.converge(2)
    assert docker_ids(space.pk) == []
    assert proxy.get(space.host).status_code == 503


def test_a_starting_app_is_looked_at_when_it_says_it_serves(
    runner, proxy, images, monkeypatch, resolve_localhost, tmp_path
):
    """No timer between looks: with the fallback gap longer than the look, only the app's own
    output ("Running on ...", printed once Gradio serves) can end the look with an answer."""
    # Still loading its model (asleep) when the first pass looks: that look cannot see it serve.
    slow = docker_build(
        f"{settings.INSTANCE}-runner-test/slow:1",
        APP_DOCKERFILE.format(sdk=images.sdk, python="python"),
        {"app.py": "import time\ntime.sleep(4)\n" + GREETER.format(greeting="Hello")},
        tmp_path,
    )
    monkeypatch.setattr("runner.reconcile.FIRST_LOOK_GAP", 3600)
    monkeypatch.setattr("runner.reconcile.LONGEST_LOOK_GAP", 3600)
    space = deployed("dora", "prompt", slow)
    runner.tick(wait=True)  # starts it and looks for a second
    start = runner.starting[space.pk]
    assert runner.check_start(start, look=120) == ""
    lines = list(space.run_lines.values_list("text", flat=True))
    assert any("Running on" in line for line in lines), lines
    runner.converge()
    space.refresh_from_db()
    assert space.stage == "RUNNING", space.stage_message
    assert Client(proxy.url(space), verbose=False).predict("Dora", api_name="/predict") == "Hello, Dora!"


def test_private_space_sleeps_and_wakes(runner, proxy, images, server, resolve_localhost):
    space = deployed("cleo", "secret", images.hello, visibility="private")
    runner.converge()
    space.refresh_from_db()
    assert space.stage == "RUNNING", space.stage_message

    # Without a token: refused. With the owner's access token: served (and the token is not passed on).
    assert proxy.get(space.host, "/config").status_code == 403
    _, token = AccessToken.issue(space.owner, "test")
    client = Client(proxy.url(space), token=token, verbose=False)
    assert client.predict("Cleo", api_name="/predict") == "Hello, Cleo!"
    # The space page's iframe URL: the signed token becomes a cookie for this subdomain only.
    browser = requests.Session()
    embed = space_embed_url(space, space.owner)
    path = "/?" + embed.split("?", 1)[1]
    first = proxy.get(space.host, path, allow_redirects=False)
    assert first.status_code == 302 and "__sign" not in first.headers["Location"]
    browser.cookies.update(first.cookies)
    assert (
        browser.get(f"http://127.0.0.1:{proxy.port}/config", headers={"Host": space.host}).status_code == 200
    )
    stranger = space_embed_url(space, None)
    assert "__sign" not in stranger

    # Idle past its sleep time: frozen (the same container, paused, its memory still held by its
    # cgroup), and the subdomain shows the wake page.
    awake_id = space.container_id
    Space.objects.filter(pk=space.pk).update(sleep_time=0)
    runner.converge()
    space.refresh_from_db()
    assert space.stage == "SLEEPING" and docker_ids(space.pk) == [awake_id[:12]]
    assert inspect(awake_id)["State"]["Status"] == "paused"
    assert cgroup_memory(awake_id) > 20 * 2**20  # Python and Gradio, imported and kept
    assert Runtime.objects.get(pk=space.pk).sleep_tier == "frozen"
    assert proxy.get(space.host, "/config").status_code == 403  # a stranger cannot wake it
    page = browser.get(f"http://127.0.0.1:{proxy.port}/", headers={"Host": space.host})
    assert page.status_code == 503 and "waking up" in page.text
    Space.objects.filter(pk=space.pk).update(sleep_time=3600)
    assert Space.objects.get(pk=space.pk).stage == "APP_STARTING"
    runner.converge()
    # Woken by unpausing it: the same container answers gradio_client, no new one started.
    assert client.predict("Frozen", api_name="/predict") == "Hello, Frozen!"
    assert docker_ids(space.pk) == [awake_id[:12]] and Space.objects.get(pk=space.pk).container_id == awake_id
    assert Runtime.objects.get(pk=space.pk).sleep_tier == ""
    assert (
        browser.get(f"http://127.0.0.1:{proxy.port}/config", headers={"Host": space.host}).status_code == 200
    )
    # A stranger still cannot wake or see it.
    assert proxy.get(space.host, "/config").status_code == 403

    # Pause (owner only) stops it until a restart.
    auth = {"Authorization": f"Bearer {token}"}
    api = f"{server.url}/api/spaces/{space.full_name}"
    _, other = AccessToken.issue(deployed("dan", "x", images.crashes).owner, "t")
    assert (
        requests.post(f"{api}/pause", headers={"Authorization": f"Bearer {other}"}, timeout=10).status_code
        == 404
    )
    assert requests.post(f"{api}/pause", headers=auth, timeout=10).json()["stage"] == "RUNNING"
    runner.converge()
    space.refresh_from_db()
    assert space.stage == "PAUSED" and docker_ids(space.pk) == []
    paused_page = browser.get(f"http://127.0.0.1:{proxy.port}/", headers={"Host": space.host})
    assert paused_page.status_code == 503 and "paused" in paused_page.text
    assert Space.objects.get(pk=space.pk).stage == "PAUSED"
    bad = requests.post(f"{api}/sleeptime", json={"seconds": 5}, headers=auth, timeout=10)
    assert bad.status_code == 400 and "at least 60" in bad.json()["error"]
    ok = requests.post(f"{api}/sleeptime", json={"seconds": 600}, headers=auth, timeout=10)
    assert ok.json()["gcTimeout"] == 600
    assert requests.post(f"{api}/restart", headers=auth, timeout=10).status_code == 200
    runner.converge()
    space.refresh_from_db()
    assert space.stage == "RUNNING"
    assert client.predict("again", api_name="/predict") == "Hello, again!"


def test_past_the_frozen_budget_the_oldest_sleeps_deeply(runner, proxy, images, settings, resolve_localhost):
    """Two spaces frozen; with the frozen tier's budget between the newer one's memory and both's,
    the one used longer ago sleeps deeply (its container and its cgroup gone) and the newer stays
    frozen; a visit still wakes the deep one, in a new container, and a push to the frozen one
    replaces its stale frozen container."""
    older, newer = deployed("ivy", "older", images.hello), deployed("ivy", "newer", images.hello)
    runner.converge()
    awake = {s.pk: Space.objects.get(pk=s.pk).container_id for s in (older, newer)}
    now = timezone.now()
    Space.objects.filter(pk=older.pk).update(sleep_time=0, last_request_at=now - timedelta(hours=1))
    Space.objects.filter(pk=newer.pk).update(sleep_time=0, last_request_at=now - timedelta(minutes=1))
    runner.converge()
    held = dict(Runtime.objects.filter(sleep_tier="frozen").values_list("space_id", "frozen_bytes"))
    assert set(held) == {older.pk, newer.pk}
    assert held[newer.pk] == pytest.approx(cgroup_memory(awake[newer.pk]), rel=0.05)

    settings.FROZEN_MEMORY_MB = (held[newer.pk] + held[older.pk] // 2) // 2**20
    runner.converge()
    assert docker_ids(older.pk) == [] and cgroup_memory(awake[older.pk]) == 0
    assert Runtime.objects.get(pk=older.pk).sleep_tier == "deep"
    assert docker_ids(newer.pk) == [awake[newer.pk][:12]] and inspect(awake[newer.pk])["State"]["Paused"]
    assert Runtime.objects.get(pk=newer.pk).sleep_tier == "frozen"

    # The deep one wakes on a visit, in a new container; meanwhile a push to the frozen one makes
    # its frozen container stale: removed, and the new version starts (both in the same passes).
    Space.objects.filter(pk__in=[older.pk, newer.pk]).update(sleep_time=3600)
    visit = proxy.get(older.host, "/")
    assert visit.status_code == 503 and visit.headers["X-Spacedock-Wake"] == "APP_STARTING"
    publish(newer, images.hello2)
    runner.converge()
    assert Client(proxy.url(older), verbose=False).predict("Ivy", api_name="/predict") == "Hello, Ivy!"
    assert Client(proxy.url(newer), verbose=False).predict("Ivy", api_name="/predict") == "Howdy, Ivy!"
    for space in (older, newer):
        now_serving = Space.objects.get(pk=space.pk).container_id
        assert now_serving != awake[space.pk] and docker_ids(space.pk) == [now_serving[:12]]
    assert set(Runtime.objects.filter(pk__in=awake).values_list("sleep_tier", flat=True)) == {""}


def test_runner_process_converges_after_kill_and_caddy_restart(
    proxy, live, images, tmp_path, resolve_localhost
):
    from runner.caddy import Admin, CaddyError
    from tests.runner_fixtures import ROOT, process_env, runner_env, start_caddy  # noqa: F401

    space = deployed("eve", "steady", images.hello)
    v1 = space.deployed_build
    v1.pin()  # a paper cites v1: its pin must outlive every restart below
    log = tmp_path / "runner.log"

    def start_runner():
        out = open(log, "ab")
        return subprocess.Popen(
            [__import__("sys").executable, "manage.py", "runner"],
            cwd=ROOT,
            env=runner_env(proxy),
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    proc = start_runner()
    try:
        wait_for(lambda: Space.objects.get(pk=space.pk).stage == "RUNNING", 60, what=f"RUNNING\n{log}")
        assert proxy.get(space.host, "/config").status_code == 200
        # kill -9 in the middle of a deploy: a new container started, the old one still serving.
        publish(space, images.hello2)
        wait_for(lambda: len(docker_ids(space.pk)) == 2, 30, 0.05, "a second container")
        proc.kill()
        proc.wait()
        proc = start_runner()
        wait_for(
            lambda: (
                Space.objects.get(pk=space.pk).running_image == images.hello2
                and Space.objects.get(pk=space.pk).stage == "RUNNING"
            ),
            90,
            what="the new version",
        )
        space.refresh_from_db()
        wait_for(lambda: docker_ids(space.pk) == [space.container_id[:12]], 30, what="one container")
        assert Client(proxy.url(space), verbose=False).predict("Eve", api_name="/predict") == "Howdy, Eve!"

        # Caddy restarts empty: the runner loads its config again.
        proxy.proc.kill()
        proxy.proc.wait()
        proxy.proc = start_caddy(proxy.admin, tmp_path / "caddy.log")

        def reloaded():
            try:
                return Admin(proxy.admin).current().get("apps")
            except CaddyError:  # its admin endpoint restarts as the runner's /load replaces it
                return None

        wait_for(reloaded, 30, what="config reloaded")
        wait_for(lambda: proxy.get(space.host, "/config").status_code == 200, 30, what="served again")

        # The engine kills the container (as a dockerd restart does): started again, nothing orphaned.
        subprocess.run([DOCKER, "kill", space.container_id], check=True, capture_output=True)
        wait_for(
            lambda: (
                (s := Space.objects.get(pk=space.pk)).stage == "RUNNING"
                and s.container_id != space.container_id
            ),
            60,
            what="a fresh container",
        )
        space.refresh_from_db()
        assert docker_ids(space.pk) == [space.container_id[:12]]
        assert proxy.get(space.host, "/config").status_code == 200

        # The pin, asleep through all of that, wakes on the paper's visit and still serves v1.
        v1.refresh_from_db()
        assert proxy.get(v1.pinned_host, "/").headers["X-Spacedock-Wake"] in ("SLEEPING", "APP_STARTING")
        wait_for(lambda: proxy.get(v1.pinned_host, "/config").status_code == 200, 60, what="the pin awake")
        pinned = Client(f"http://{v1.pinned_host}:{proxy.port}/", verbose=False)
        assert pinned.predict("Eve", api_name="/predict") == "Hello, Eve!"
        v1.unpin()
        wait_for(
            lambda: docker_ids(space.pk) == [space.container_id[:12]], 30, what="the pin's container gone"
        )

        # SIGTERM: a clean stop; pausing afterwards is done by the next runner.
        proc.terminate()
        assert proc.wait(30) == 0
        Space.objects.filter(pk=space.pk).update(paused=True)
        proc = start_runner()
        wait_for(lambda: docker_ids(space.pk) == [], 30, what="paused and stopped")
    finally:
        proc.terminate()
        proc.wait(30)
        # A failure above may leave a container; the next runner would remove it as an orphan anyway.
        for container_id in docker_ids(space.pk):
            subprocess.run([DOCKER, "rm", "-f", container_id], capture_output=True)


@pytest.mark.fast
def test_two_runners_never_hold_one_space(transactional_db):
    from django.contrib.auth.models import User

    space = Space.create(User.objects.create(username="fay"), "shared")
    assert Runtime.claim(space.pk, "host:1")
    assert not Runtime.claim(space.pk, "host:2")
    assert Runtime.claim(space.pk, "host:1")  # renewing its own lease
    # A runner that died stops renewing; once its lease runs out another takes over.
    Runtime.objects.filter(pk=space.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    assert Runtime.claim(space.pk, "host:2")
    assert not Runtime.claim(space.pk, "host:1")
    Runtime.release_all("host:2")
    assert Runtime.claim(space.pk, "host:1")


def test_browser_wakes_a_sleeping_private_space_from_its_embed_link(runner, proxy, images, browser, settings):
    from playwright.sync_api import expect

    space = deployed("gus", "napper", images.hello, visibility="private")
    runner.converge()
    settings.FROZEN_MEMORY_MB = 0  # no frozen tier: it sleeps deeply, and the wake starts it afresh
    Space.objects.filter(pk=space.pk).update(sleep_time=0)
    runner.converge()
    space.refresh_from_db()
    assert space.stage == "SLEEPING" and docker_ids(space.pk) == []

    with runner_loop(runner):
        Space.objects.filter(pk=space.pk).update(sleep_time=3600)
        url = space_embed_url(space, space.owner).replace(f":{settings.PORT}/", f":{proxy.port}/")
        page = browser.new_page()
        page.goto(url)
        assert "waking up" in page.inner_text("body")
        # No reload by hand: the page moves on to the app once it answers.
        page.get_by_role("button", name="Greet").wait_for(timeout=60_000)
        assert "__sign" not in page.url
        page.get_by_role("textbox").first.fill("Gus")
        page.get_by_role("button", name="Greet").click()
        expect(page.get_by_role("textbox").nth(1)).to_have_value("Hello, Gus!", timeout=20_000)
        page.close()
        # Another browser, without the link (a fresh context: no cookie), is refused.
        stranger = browser.new_context()
        other = stranger.new_page()
        other.goto(f"http://{space.host}:{proxy.port}/")
        assert "This space is private" in other.inner_text("body")
        stranger.close()
