"""Runtime benchmark: push-to-live for a code-only change, Caddy's overhead, wake from either sleep tier.

    DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/bench_runtime.py [--rounds 5] [--seconds 10]

Starts its own gunicorn, Celery worker, Caddy, `./manage.py runner` and registry (the real
processes) on free ports, with a database of its own (SQLite in a temporary folder unless DATABASE_URL is
set), and reports medians:

- push-to-live: `git push` of a code-only change of the hello-world Gradio app to gunicorn, built
  by a real Celery worker, deployed by the runner, timed until the new text answers through
  Caddy at the subdomain; target < 8 s.
- requests per second through Caddy against the same container directly, driven by wrk
  (target ratio >= 0.95), unpinned and with the app on one core and Caddy and wrk on the other;
  beside them Caddy's CPU per proxied request (from /proc), which a busy machine moves far less.
- wake from frozen: first request to a frozen space (its container paused) until the app answers
  through Caddy (target < 0.3 s, the issue's figure for a recently used space).
- wake from deep sleep: the same for a space whose container is gone (frozen past
  SPACEDOCK_DEEP_SLEEP_SECONDS: the bench backdates `frozen_at` instead of waiting an hour),
  against `docker run` of the same image until it first answers (target within 1.3x).
- memory of a frozen space and of a deep-sleeping one, read from the container's memory cgroup
  (`memory.usage_in_bytes` or `memory.current`); a deep-sleeping space has no container, hence no
  cgroup: 0.
- with the warm pool (runner/pool.py): the runner restarted with SPACEDOCK_WARM_POOL=true, the same
  code-only push-to-live (target < 2.5 s) and wake from deep sleep (target < 1 s), each round
  started once the pool holds a ready container (as for a push or a visit that is not back to back
  with the last one) and counted only if the space adopted it.
- with --browser, wake as a visitor sees it: Chromium opens the sleeping space's address and is
  timed until the app's own page has drawn its first button (the wake page in between moves on
  by itself), next to the same in an already running space (the app's own page load).
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SPACEDOCK_INSTANCE", "bench")
os.environ.setdefault("SPACEDOCK_DATA_DIR", tempfile.mkdtemp(prefix="spacedock-bench-"))
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"

import django  # noqa: E402

django.setup()

import requests  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from runner import docker_runtime, pool  # noqa: E402
from runner.local import LocalBackend  # noqa: E402
from runner.models import Adoption, Runtime  # noqa: E402
from spacedock.accounts.models import AccessToken  # noqa: E402
from spacedock.labels import LABEL_DEPLOYMENT  # noqa: E402
from spacedock.spaces import stages  # noqa: E402
from spacedock.spaces.models import Space  # noqa: E402
from tests import conftest  # noqa: E402
from tests import runner_fixtures as rf  # noqa: E402

# The title is in Gradio's /config, so the new version is visible to a plain GET.
TITLED = rf.GREETER.replace("gr.Blocks()", 'gr.Blocks(title="{greeting}")')


def database_for_bench() -> None:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        db["NAME"] = str(settings.DATA_DIR / "bench.sqlite3")
    call_command("migrate", verbosity=0)


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def load(url: str, host: str | None, seconds: float, cpus: str = "") -> tuple[float, int]:
    """Requests per second that wrk gets from `url` with 16 keep-alive connections, and how many.

    wrk, not Python threads: a Python client takes a whole core of the two here, and Caddy
    would then be measured against the load generator rather than against the app.
    """
    headers = ["-H", f"Host: {host}"] if host else []
    pin = ["taskset", "-c", cpus] if cpus else []
    out = subprocess.run(
        [*pin, "wrk", "-t", "2", "-c", "16", "-d", f"{seconds:.0f}s", *headers, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw failed requests against {url}:\n{out}")
    rate, count = re.search(r"Requests/sec:\s+([0-9.]+)", out)[1], re.search(r"(\d+) requests in", out)[1]
    return float(rate), int(count)


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process (all its threads) has used, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def compare(
    direct: str, proxied: str, host: str, rounds: int, seconds: float, caddy_pid: int, cpus: str = ""
) -> tuple[list[float], list[float]]:
    """Ratios through Caddy / direct, alternating runs so the machine's other load hits both alike;
    and Caddy's CPU per proxied request (µs), which the other load changes far less than a ratio."""
    pairs, caddy_us = [], []
    for _ in range(rounds):
        raw, _ = load(direct, None, seconds, cpus)
        before = cpu_seconds(caddy_pid)
        via, count = load(proxied, host, seconds, cpus)
        caddy_us.append((cpu_seconds(caddy_pid) - before) / count * 1e6)
        pairs.append(via / raw)
        print(f"  req/s direct {raw:.0f}, through Caddy {via:.0f} (Caddy {caddy_us[-1]:.0f} µs/request)"
              f"{' (pinned)' if cpus else ''}, load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    return pairs, caddy_us


def answers(url: str, host: str | None = None, text: str | None = None) -> bool:
    try:
        r = requests.get(url, headers={"Host": host} if host else {}, timeout=5)
    except requests.RequestException:
        return False
    return r.status_code == 200 and "X-Spacedock-Wake" not in r.headers and (text is None or text in r.text)


def place(container_id: str, caddy_pid: int, app: str, rest: str) -> None:
    """Puts the app's container on the `app` cores and every Caddy thread on the `rest`, with the
    docker-proxy behind the container's published port (both runs cross it, ~100 µs of CPU per
    request): left free, the scheduler may run it on the app's core, the more so when Caddy keeps
    the other one busy, and the pinned run would no longer give the app a core of its own."""
    subprocess.run([rf.DOCKER, "update", "--cpuset-cpus", app, container_id], check=True, capture_output=True)
    published = f"docker-proxy .*-host-port {bare_port(container_id)} "
    # None when the engine runs with --userland-proxy=false.
    proxies = subprocess.run(["pgrep", "-f", published], capture_output=True, text=True).stdout.split()
    for pid in [str(caddy_pid), *proxies]:
        subprocess.run(["taskset", "-a", "-p", "-c", rest, pid], check=True, capture_output=True)


def bare_port(cid: str) -> str:
    """The host port of a plain `docker run`; says why when the container is already gone."""
    out = subprocess.run([rf.DOCKER, "port", cid, "7860"], capture_output=True, text=True).stdout.split()
    if not out:
        state = subprocess.run([rf.DOCKER, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", cid],
                               capture_output=True, text=True).stdout  # fmt: skip
        logs = subprocess.run([rf.DOCKER, "logs", "--tail", "30", cid], capture_output=True, text=True)
        raise SystemExit(
            f"bare container {cid[:12]} published no port ({state.strip()}):\n{logs.stdout}{logs.stderr}"
        )
    return out[0].rsplit(":", 1)[1]


def containers_of(space, status: str = "") -> list[str]:
    """The space's containers as the runner sees them: those it started and a warm pool container it
    adopted (whose labels Docker does not have: they are its runner.Adoption row's)."""
    found = LocalBackend().instances(space.pk)
    return [i.id for i in found if LABEL_DEPLOYMENT not in i.labels and (not status or i.status == status)]


def freeze(space) -> str:
    """What the runner does after the sleep time, once the space is RUNNING: frozen. Its container's id."""
    rf.wait_for(lambda: stages.sleep(space), 30, what="RUNNING, then asleep")
    rf.wait_for(lambda: Runtime.objects.filter(pk=space.pk, sleep_tier="frozen").exists(), 60, what="frozen")
    return (containers_of(space, "paused") or [""])[0]


def deep_sleep(space) -> str:
    """Frozen, then past SPACEDOCK_DEEP_SLEEP_SECONDS (backdated, not waited for): removed. The id
    of the container it had."""
    cid = freeze(space)
    an_hour_ago = timezone.now() - timedelta(seconds=settings.DEEP_SLEEP_SECONDS + 1)
    Runtime.objects.filter(pk=space.pk).update(frozen_at=an_hour_ago)
    rf.wait_for(lambda: not containers_of(space), 60, what="deep asleep")
    return cid


def woken(proxy: str, host: str) -> float:
    """The visit that wakes it, until the app answers through Caddy."""
    began = time.monotonic()
    requests.get(proxy + "/", headers={"Host": host}, timeout=10)
    rf.wait_for(lambda: answers(proxy + "/config", host), 120, 0.05, what="awake")
    return time.monotonic() - began


def push_round(repo, git_url: str, proxy: str, host: str, greeting: str) -> float:
    """A code-only push of the app with a new greeting, until the new version answers through Caddy."""
    repo.write({"app.py": TITLED.format(greeting=greeting)})
    repo.commit(greeting)
    began = time.monotonic()
    assert repo.push(git_url).returncode == 0
    rf.wait_for(lambda: answers(proxy + "/config", host, greeting), 300, 0.05, what="new version")
    return time.monotonic() - began


def pool_ready(pool_image: str) -> None:
    rf.wait_for(lambda: pool.idle(pool_image), 180, 0.2, what="a ready warm pool container")


def adopted(space) -> bool:
    """Whether the space's serving container is a warm pool container it adopted."""
    space.refresh_from_db()
    return Adoption.objects.filter(container_id=space.container_id).exists()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--browser", action="store_true", help="also time a wake in headless Chromium")
    opts = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed for the proxy figure: apt-get install wrk (make bench does)")
    database_for_bench()
    work = Path(tempfile.mkdtemp(prefix="bench-work-"))
    web_port, proxy_port = conftest.free_port(), conftest.free_port()
    admin = f"127.0.0.1:{conftest.free_port()}"
    settings.WEB_PORT, settings.CADDY_ADMIN = web_port, admin
    env = conftest.process_env(
        SPACEDOCK_WEB_PORT=str(web_port),
        SPACEDOCK_LISTEN=f"127.0.0.1:{proxy_port}",
        SPACEDOCK_CADDY_ADMIN=admin,
        SPACEDOCK_CADDY_ACCESS_LOG=str(work / "access.log"),
        SPACEDOCK_RUNNER_INTERVAL="1",
        SPACEDOCK_DRAIN_TIMEOUT="5",
    )
    caddy_proc = rf.start_caddy(admin, work / "caddy.log")  # Caddy itself: it execs
    procs = [
        start([sys.executable, "-m", "gunicorn", "spacedock.wsgi", "--bind", f"127.0.0.1:{web_port}",
               "--worker-class", "gthread", "--threads", "16"], env, work / "web.log"),
        start([sys.executable, "-m", "celery", "-A", "spacedock", "worker", "--queues", "builds,celery",
               "--concurrency", "1", "--prefetch-multiplier", "1"], env, work / "worker.log"),
        caddy_proc,
        start([sys.executable, "manage.py", "runner"], env, work / "runner.log"),
        start(["bash", "deploy/registry.sh"], env, work / "registry.log"),
    ]  # fmt: skip
    proxy = f"http://127.0.0.1:{proxy_port}"
    space = None
    try:
        rf.wait_for(lambda: answers(f"http://127.0.0.1:{web_port}/healthz"), 60, what="gunicorn")
        owner, _ = User.objects.get_or_create(username="bench")
        _, token = AccessToken.issue(owner, "bench")
        # A name of its own each run: a shared scratch database keeps earlier runs' spaces.
        name = f"hello-{int(time.time())}"
        git_url = f"http://bench:{token}@127.0.0.1:{web_port}/spaces/bench/{name}"
        repo = conftest.Repo(work / "repo")
        repo.write(
            {"README.md": "---\ntitle: Hello\nsdk: gradio\n---\n", "app.py": TITLED.format(greeting="First")}
        )
        repo.commit("first")
        print("first push (a cold machine builds the shared Gradio image first)...", flush=True)
        assert repo.push(git_url).returncode == 0
        space = Space.objects.get(owner=owner, name=name)
        Space.objects.filter(pk=space.pk).update(sleep_time=-1)
        host = f"{space.host}:{proxy_port}"
        rf.wait_for(lambda: answers(proxy + "/config", host, "First"), 900, what="first deploy")

        live = []
        for i in range(opts.rounds):
            live.append(push_round(repo, git_url, proxy, host, f"Round{i}"))
            print(f"  push-to-live round {i}: {live[-1]:.2f} s", flush=True)

        space.refresh_from_db()
        # The container's published port, not space.port: that is wherever Caddy dials the app.
        direct = f"http://127.0.0.1:{bare_port(space.container_id)}/config"
        pairs, caddy_us = compare(direct, proxy + "/config", host, opts.rounds, opts.seconds, caddy_proc.pid)
        # Where the loss comes from: the same, with the app alone on core 0, and Caddy, wrk and
        # docker-proxy on core 1.
        pinned, cpus = [], os.cpu_count() or 1
        if cpus >= 2 and shutil.which("taskset"):
            place(space.container_id, caddy_proc.pid, app="0", rest="1")
            try:
                pinned, _ = compare(
                    direct, proxy + "/config", host, opts.rounds, opts.seconds, caddy_proc.pid, cpus="1"
                )
            finally:
                place(space.container_id, caddy_proc.pid, app=f"0-{cpus - 1}", rest=f"0-{cpus - 1}")

        wake, bare, thawed, frozen_mb, deep_mb = [], [], [], [], []
        image = space.deployed_build.image
        for i in range(opts.rounds):
            frozen_mb.append(rf.cgroup_memory(freeze(space)) / 2**20)
            thawed.append(woken(proxy, host))
            deep_mb.append(rf.cgroup_memory(deep_sleep(space)) / 2**20)
            wake.append(woken(proxy, host))
            began = time.monotonic()
            cid = subprocess.run(
                [rf.DOCKER, "run", "-d", "-p", "127.0.0.1::7860", image],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            try:
                port = bare_port(cid)
                rf.wait_for(lambda p=port: answers(f"http://127.0.0.1:{p}/config"), 120, 0.05, what="bare")
                bare.append(time.monotonic() - began)
            finally:
                subprocess.run([rf.DOCKER, "rm", "-f", cid], capture_output=True)
            print(
                f"  wake round {i}: from frozen {thawed[-1]:.3f} s ({frozen_mb[-1]:.0f} MB held), "
                f"from deep sleep {wake[-1]:.2f} s ({deep_mb[-1]:.0f} MB), bare docker run {bare[-1]:.2f} s",
                flush=True,
            )

        # The same two, with the warm pool: the runner again, with the pool on.
        procs[3].terminate()
        procs[3].wait(30)
        procs[3] = start([sys.executable, "manage.py", "runner"], {**env, "SPACEDOCK_WARM_POOL": "true"},
                         work / "runner-pool.log")  # fmt: skip
        space.refresh_from_db()
        pool_image = pool.pool_image_of(space.deployed_build.image)
        if not pool_image:
            raise SystemExit("the build names no pool image (spacedock.pool): see the worker's log")
        warm_live, warm_wake = [], []
        for i in range(opts.rounds):
            pool_ready(pool_image)
            took = push_round(repo, git_url, proxy, host, f"Warm{i}")
            if adopted(space):
                warm_live.append(took)
            print(f"  push-to-live with the pool, round {i}: {took:.2f} s"
                  f"{'' if adopted(space) else ' (cold: not counted)'}", flush=True)  # fmt: skip
        for i in range(opts.rounds):
            deep_sleep(space)
            pool_ready(pool_image)
            took = woken(proxy, host)
            if adopted(space):
                warm_wake.append(took)
            print(f"  wake from deep sleep with the pool, round {i}: {took:.2f} s"
                  f"{'' if adopted(space) else ' (cold: not counted)'}", flush=True)  # fmt: skip
        if not warm_live or not warm_wake:
            raise SystemExit("no round adopted a warm pool container: see runner-pool.log")

        seen = browser_wakes(space, host, opts.rounds) if opts.browser else {}

        ratio = statistics.median(pairs)
        wake_ratio = statistics.median(wake) / statistics.median(bare)
        print()
        median_live = statistics.median(live)
        print(f"push-to-live (code-only change), median of {len(live)}: {median_live:.2f} s  (target < 8 s)")
        print(f"requests/s through Caddy / direct, median ratio of pairs: {ratio:.2f}  (target >= 0.95)")
        if pinned:
            print(f"  the same with the app on its own core: {statistics.median(pinned):.2f}")
        print(f"  Caddy's CPU per proxied request, median: {statistics.median(caddy_us):.0f} µs")
        frozen, deep = statistics.median(frozen_mb), statistics.median(deep_mb)
        print(f"wake from frozen, median: {statistics.median(thawed):.3f} s  (target < 0.3 s); "
              f"memory frozen {frozen:.0f} MB, deep asleep {deep:.0f} MB")  # fmt: skip
        print(f"wake from deep sleep, median: {statistics.median(wake):.2f} s vs bare docker run "
              f"{statistics.median(bare):.2f} s = {wake_ratio:.2f}x  (target <= 1.3x)")  # fmt: skip
        warm_live_median, warm_wake_median = statistics.median(warm_live), statistics.median(warm_wake)
        print(f"with the warm pool: push-to-live {warm_live_median:.2f} s (target < 2.5 s), "
              f"wake from deep sleep {warm_wake_median:.2f} s (target < 1 s)")  # fmt: skip
        figures = [
            {"name": "push-to-live, code-only change (s, median)", "value": median_live, "target": "< 8"},
            {"name": "req/s through Caddy / direct (median of pairs)", "value": ratio, "target": ">= 0.95"},
        ]
        if pinned:
            figures.append(
                {
                    "name": "req/s ratio, app on core 0, Caddy, wrk and docker-proxy on core 1",
                    "value": statistics.median(pinned),
                }
            )
        figures.append(
            {"name": "Caddy CPU per proxied request (µs, median)", "value": statistics.median(caddy_us)}
        )
        figures += [
            {"name": "wake from frozen (s, median)", "value": statistics.median(thawed), "target": "< 0.3"},
            {"name": "memory of a frozen space (MB, cgroup, median)", "value": frozen},
            {"name": "memory of a deep-sleeping space (MB, cgroup)", "value": deep},
            {"name": "wake from deep sleep (s, median)", "value": statistics.median(wake)},
            {"name": "bare docker run to first answer (s, median)", "value": statistics.median(bare)},
            {"name": "wake / bare docker run", "value": wake_ratio, "target": "<= 1.3"},
            {"name": "push-to-live, code-only change, warm pool (s, median)", "value": warm_live_median,
             "target": "< 2.5"},
            {"name": "wake from deep sleep, warm pool (s, median)", "value": warm_wake_median,
             "target": "< 1"},
        ]  # fmt: skip
        if seen:
            for name, samples in seen.items():
                print(f"{name}, median: {statistics.median(samples):.2f} s")
                figures.append({"name": f"{name} (s, median)", "value": statistics.median(samples)})
        result = {
            "benchmark": "runtime" if settings.REDIS_URL else "runtime_embedded",
            "figures": figures,
            "note": (
                f"{len(live)} rounds; wrk {opts.seconds:.0f} s per run; "
                + ("Postgres" if connection.vendor == "postgresql" else "SQLite")
                + (
                    " and Redis (the wake page nudges the runner)"
                    if settings.REDIS_URL
                    else ", no Redis (the wake page nudges the runner over a local socket)"
                )
            ),  # fmt: skip
            "samples": {
                "push_to_live": live,
                "proxy_ratios": pairs,
                "pinned_ratios": pinned,
                "wake": wake,
                "wake_frozen": thawed,
                "frozen_mb": frozen_mb,
                "deep_mb": deep_mb,
                "bare": bare,
                "push_to_live_warm_pool": warm_live,
                "wake_warm_pool": warm_wake,
                **{name: samples for name, samples in seen.items()},
            },
        }
        print(json.dumps(result))
    finally:
        if space is not None:
            type(space).objects.update(paused=True)
            rf.wait_for(lambda: not containers_of(space), 60, what="stopped")
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(30)
        for container in docker_runtime.pool_containers():  # the runner that kept them is gone
            docker_runtime.remove(container.id)


def browser_wakes(space, host: str, rounds: int) -> dict[str, list[float]]:
    """Chromium opens the space as a visitor does: asleep (wake page, then the app) and awake."""
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM

    # Playwright's sync API keeps an event loop on this thread; the ORM calls between pages are
    # plain sync calls (as in tests/browser.py).
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    asleep, awake = [], []
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--headless", "--disable-background-networking"]
        )
        try:
            for i in range(rounds):
                for samples, sleeping in ((asleep, True), (awake, False)):
                    if sleeping:
                        deep_sleep(space)
                    page = chromium.new_page()  # a new page each time: nothing cached in memory
                    began = time.monotonic()
                    page.goto(f"http://{host}/")
                    page.get_by_role("button", name="Greet").wait_for(timeout=120_000)
                    samples.append(time.monotonic() - began)
                    page.close()
                print(f"  browser round {i}: asleep {asleep[-1]:.2f} s, awake {awake[-1]:.2f} s", flush=True)
        finally:
            chromium.close()
    return {"browser: deep asleep to the app's button": asleep, "browser: a running app's button": awake}


if __name__ == "__main__":
    main()
