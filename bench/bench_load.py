"""Load benchmark: pages and push-to-live while anonymous visitors browse and log streams are open.

    DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/bench_load.py [--visitors 8] [--streams 20]
        [--seconds 10] [--rounds 2]

Starts its own gunicorn (as the Procfile runs it: gthread, 16 threads), Celery worker, Caddy and
runner on free ports, deploys the hello-world Gradio app, then measures twice, idle and loaded:

- page time: the gallery and the space page, fetched in turn, each visitor's requests timed
  (p50 and p95, ms);
- push-to-live: a code-only change, from `git push` until the new version answers through Caddy.

Loaded means `--visitors` threads fetching pages as fast as they are answered plus `--streams`
open log streams, each as another visitor (its own X-Forwarded-For, as Caddy would send it), for
the whole measurement. Every request goes to 127.0.0.1; nothing runs longer than its round.
"""

import argparse
import json
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import requests  # noqa: E402
from bench_runtime import TITLED, answers, database_for_bench, start  # noqa: E402
from bench_runtime import push_round as push_once  # noqa: E402

from tests import conftest  # noqa: E402
from tests import runner_fixtures as rf  # noqa: E402


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else float("nan")


def browse(web: str, paths: list[str], stop: threading.Event, times: list[float]) -> None:
    session = requests.Session()
    while not stop.is_set():
        for path in paths:
            began = time.monotonic()
            try:
                if session.get(f"{web}{path}", timeout=30).status_code == 200:
                    times.append((time.monotonic() - began) * 1000)
            except requests.RequestException:
                pass


def hold_streams(port: int, path: str, count: int) -> tuple[list[socket.socket], int]:
    held, refused = [], 0
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        visitor = f"198.18.{i // 250}.{i % 250 + 1}"
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: {visitor}\r\n\r\n".encode())
        head = sock.recv(4096).split(b"\r\n", 1)[0]
        if b" 200 " in head:
            held.append(sock)
        else:
            refused += 1
            sock.close()
    return held, refused


def measure(web, paths, visitors, seconds, push_round) -> tuple[list[float], float]:
    stop, times = threading.Event(), []
    threads = [
        threading.Thread(target=browse, args=(web, paths, stop, times), daemon=True) for _ in range(visitors)
    ]
    for thread in threads:
        thread.start()
    began = time.monotonic()
    live = push_round()
    time.sleep(max(0.0, seconds - (time.monotonic() - began)))
    stop.set()
    for thread in threads:
        thread.join(35)
    return times, live


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--visitors", type=int, default=8)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    opts = parser.parse_args()
    from django.conf import settings
    from django.contrib.auth.models import User

    from spacedock.accounts.models import AccessToken
    from spacedock.spaces.models import Space

    database_for_bench()
    work = Path(conftest.settings.DATA_DIR) / f"bench-load-{int(time.time())}"
    work.mkdir(parents=True)
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
    caddy_proc = rf.start_caddy(admin, work / "caddy.log")
    procs = [
        start([sys.executable, "-m", "gunicorn", "spacedock.wsgi", "--bind", f"127.0.0.1:{web_port}",
               "--worker-class", "gthread", "--threads", "16"], env, work / "web.log"),
        start([sys.executable, "-m", "celery", "-A", "spacedock", "worker", "--queues", "builds,celery",
               "--concurrency", "1", "--prefetch-multiplier", "1"], env, work / "worker.log"),
        caddy_proc,
        start([sys.executable, "manage.py", "runner"], env, work / "runner.log"),
    ]  # fmt: skip
    web, proxy = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{proxy_port}"
    space, held = None, []
    try:
        rf.wait_for(lambda: answers(f"{web}/healthz"), 60, what="gunicorn")
        owner, _ = User.objects.get_or_create(username="bench")
        _, token = AccessToken.issue(owner, "bench")
        name = f"load-{int(time.time())}"
        git_url = f"http://bench:{token}@127.0.0.1:{web_port}/spaces/bench/{name}"
        repo = conftest.Repo(work / "repo")
        repo.write(
            {"README.md": "---\ntitle: Hello\nsdk: gradio\n---\n", "app.py": TITLED.format(greeting="First")}
        )
        repo.commit("first")
        assert repo.push(git_url).returncode == 0
        space = Space.objects.get(owner=owner, name=name)
        Space.objects.filter(pk=space.pk).update(sleep_time=-1)
        host = f"{space.host}:{proxy_port}"
        rf.wait_for(lambda: answers(proxy + "/config", host, "First"), 900, what="first deploy")
        paths = ["/", f"/bench/{name}"]
        counter = iter(range(10**6))

        def push_round() -> float:
            return push_once(repo, git_url, proxy, host, f"Round{next(counter)}")

        idle_times, idle_live, loaded_times, loaded_live, refused = [], [], [], [], 0
        for i in range(opts.rounds):
            times, live = measure(web, paths, 1, opts.seconds, push_round)
            idle_times += times
            idle_live.append(live)
            held, refused = hold_streams(web_port, f"/api/spaces/bench/{name}/logs/run", opts.streams)
            try:
                times, live = measure(web, paths, opts.visitors, opts.seconds, push_round)
            finally:
                for sock in held:
                    sock.close()
            loaded_times += times
            loaded_live.append(live)
            print(
                f"round {i}: idle p95 {p95(idle_times):.0f} ms, push-to-live {idle_live[-1]:.2f} s; "
                f"loaded p95 {p95(loaded_times):.0f} ms, push-to-live {loaded_live[-1]:.2f} s; "
                f"streams held {len(held)}, refused {refused}",
                flush=True,
            )
        figures = [
            {"name": "page p95, idle (ms)", "value": p95(idle_times)},
            {
                "name": f"page p95, {opts.visitors} visitors + {opts.streams} streams (ms)",
                "value": p95(loaded_times),
            },
            {"name": "page p50, idle (ms)", "value": statistics.median(idle_times)},
            {"name": "page p50, loaded (ms)", "value": statistics.median(loaded_times)},
            {"name": "push-to-live, idle (s, median)", "value": statistics.median(idle_live)},
            {
                "name": "push-to-live, loaded (s, median)",
                "value": statistics.median(loaded_live),
                "target": "< 8",
            },
            {"name": "log streams held / asked (last round)", "value": len(held) / max(opts.streams, 1)},
        ]
        print(json.dumps({
            "benchmark": "load",
            "figures": figures,
            "note": f"{opts.rounds} rounds of {opts.seconds:.0f} s; pages from gunicorn directly; "
                    "streams past SPACEDOCK_STREAM_SLOTS were refused with 429, as designed",
            "samples": {"idle_live": idle_live, "loaded_live": loaded_live, "requests_idle": len(idle_times),
                        "requests_loaded": len(loaded_times)},
        }))  # fmt: skip
    finally:
        if space is not None:
            type(space).objects.update(paused=True)
            rf.wait_for(lambda: not rf.docker_ids(space.pk), 60, what="stopped")
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
