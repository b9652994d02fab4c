"""Cluster benchmark: the same spaces on one host and on a Docker Swarm of 1 and 3 nodes.

    .venv/bin/python bench/bench_cluster.py [--spaces 9] [--seconds 5]     # root: it starts engines

Starts a registry, Caddy and the runner's reconcile loop in this process (no web: wakes go
through `stages.wake`, as the wake page does), and for each place (the local engine, then a
swarm of 1 and of 3 nodes from deploy/swarm-lab.sh) reports:

- start N spaces: from N deployed builds to N spaces RUNNING (s);
- deploy to live: a new version's image (built, in the registry) handed to the runner, until it
  answers through Caddy, one space at a time while all the others run (s, median of --sample);
  with the build's own time (bench_runtime.py, the same on any node) this is push-to-live;
- wake: every space put to sleep, then --sample of them woken one after another, until each
  answers through Caddy (s, median);
- req/s through Caddy to one space against the same app directly (its node's address and
  port), driven by wrk, as a ratio.

The issue's figure is 60 spaces over three nodes (`--spaces 60 --memory-mb 384`: Swarm reserves
each limit, and one lab node offers the machine's memory); a 2-core machine starts a Gradio app in
seconds of CPU each, so the default is smaller.
"""

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SPACEDOCK_INSTANCE", "benchcl")
os.environ.setdefault("SPACEDOCK_DATA_DIR", tempfile.mkdtemp(prefix="spacedock-bench-cluster-"))
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from runner import caddy  # noqa: E402
from runner.local import LocalBackend  # noqa: E402
from runner.models import Runtime  # noqa: E402
from runner.reconcile import Runner  # noqa: E402
from runner.swarm import SwarmBackend  # noqa: E402
from spacedock.spaces import stages  # noqa: E402
from spacedock.spaces.models import Space  # noqa: E402
from tests import conftest, swarm_lab  # noqa: E402
from tests import runner_fixtures as rf  # noqa: E402


def answers(url: str, host: str) -> bool:
    import requests

    try:
        return requests.get(url, headers={"Host": host}, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def wrk(url: str, host: str, seconds: float) -> float:
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", "16", "-d", f"{seconds:.0f}s", "-H", f"Host: {host}", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return float(out.split("Requests/sec:")[1].split()[0])


def loop_until(runner: Runner, done, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        runner.tick(wait=True)
        time.sleep(0.2)


def deploy_to_live(runner: Runner, pks: list[int], image: str, proxy_port: int) -> list[float]:
    """A finished build's image (in the registry) to the new version answering through Caddy, one
    space at a time while the others run: the runner's share of push-to-live (the build's share is
    the single host's, bench_runtime.py)."""
    took = []
    for pk in pks:
        space = Space.objects.get(pk=pk)
        started = time.monotonic()
        rf.publish(space, image)
        loop_until(
            runner,
            lambda s=space: (
                (now := Space.objects.get(pk=s.pk)).running_image == image
                and now.stage == "RUNNING"
                and answers(f"http://127.0.0.1:{proxy_port}/config", f"{s.host}:{proxy_port}")
            ),
        )
        took.append(time.monotonic() - started)
    return took


def measure(
    place: str,
    runner: Runner,
    images: tuple[str, str],
    count: int,
    proxy_port: int,
    seconds: float,
    sample: int,
) -> dict:
    image, new_image = images
    Space.objects.all().delete()
    runner.converge(2)
    started = time.monotonic()
    spaces = [rf.deployed("bench", f"{place}-{i}", image) for i in range(count)]
    Space.objects.update(sleep_time=-1)
    names = [s.pk for s in spaces]
    loop_until(runner, lambda: Space.objects.filter(pk__in=names, stage="RUNNING").count() == count)
    start_all = time.monotonic() - started
    one = Space.objects.get(pk=names[0])
    host = f"{one.host}:{proxy_port}"
    address = Runtime.objects.get(space=one).address or "127.0.0.1"
    proxied = wrk(f"http://127.0.0.1:{proxy_port}/config", host, seconds)
    direct = wrk(f"http://{address}:{one.port}/config", host, seconds)
    deploys = deploy_to_live(runner, names[:sample], new_image, proxy_port)
    for space in Space.objects.filter(pk__in=names):
        stages.sleep(space)
    runner.converge(2)
    wakes = []
    for pk in names[:sample]:
        space = Space.objects.get(pk=pk)
        started = time.monotonic()
        stages.wake(space)
        loop_until(
            runner, lambda s=space: answers(f"http://127.0.0.1:{proxy_port}/config", f"{s.host}:{proxy_port}")
        )
        wakes.append(time.monotonic() - started)
    Space.objects.update(paused=True)
    runner.converge(2)
    print(f"{place}: start {count} in {start_all:.1f} s, "
          f"deploy-to-live median {statistics.median(deploys):.1f} s, "
          f"wake median {statistics.median(wakes):.1f} s, "
          f"req/s {proxied:.0f} via Caddy / {direct:.0f} direct", flush=True)  # fmt: skip
    return {
        "start": start_all,
        "deploy": statistics.median(deploys),
        "wake": statistics.median(wakes),
        "ratio": proxied / direct,
        "wakes": wakes,
        "deploys": deploys,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spaces", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument(
        "--sample", type=int, default=10, help="spaces (of all) that are redeployed and woken one by one"
    )
    parser.add_argument("--memory-mb", type=int, default=1024, help="each space's memory limit")
    opts = parser.parse_args()
    opts.sample = min(opts.sample, opts.spaces)
    call_command("migrate", verbosity=0)
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    proxy_port, admin = conftest.free_port(), f"127.0.0.1:{conftest.free_port()}"
    settings.CADDY_ADMIN, settings.LISTEN = admin, f"127.0.0.1:{proxy_port}"
    settings.CADDY_ACCESS_LOG, settings.DRAIN_TIMEOUT = work / "access.log", 5
    # Swarm reserves each space's limit on its node, and a lab node offers the machine's memory: 60
    # spaces fit on one node only under a smaller limit (a hello-world Gradio app holds ~150 MB).
    basic = settings.HARDWARE[settings.HARDWARE_DEFAULT]
    settings.HARDWARE[basic.name] = dataclasses.replace(basic, memory_mb=opts.memory_mb)
    env = conftest.process_env()
    log = open(work / "registry.log", "wb")
    registry = subprocess.Popen(["bash", "deploy/registry.sh"], cwd=ROOT, env=env, stdout=log, stderr=log)
    caddy_proc = rf.start_caddy(admin, work / "caddy.log")
    results = {}
    try:
        time.sleep(2)  # the registry answers 401 to everyone: give it its start
        images = rf.build_images(work / "images")
        local = Runner(caddy.Admin(admin), runner_id="bench-local", runtime=LocalBackend())
        pair = (images.hello, images.hello2)
        results["local"] = measure("local", local, pair, opts.spaces, proxy_port, opts.seconds, opts.sample)
        local.shutdown()
        for nodes in (1, 3):
            out = swarm_lab.script("up", str(nodes))
            try:
                manager = out.splitlines()[0].split()[3]
                pair = (
                    swarm_lab.push(images.hello, "bench-hello"),
                    swarm_lab.push(images.hello2, "bench-hello2"),
                )
                runner = Runner(caddy.Admin(admin), runner_id=f"bench-{nodes}", runtime=SwarmBackend(manager))
                results[f"swarm{nodes}"] = measure(
                    f"swarm{nodes}", runner, pair, opts.spaces, proxy_port, opts.seconds, opts.sample
                )
                runner.shutdown()
            finally:
                swarm_lab.script("down")
    finally:
        caddy_proc.terminate()
        registry.terminate()
    figures = []
    for place, found in results.items():
        figures += [
            {"name": f"{place}: start {opts.spaces} spaces (s)", "value": round(found["start"], 1)},
            {
                "name": f"{place}: deploy to live (s, median of {opts.sample})",
                "value": round(found["deploy"], 2),
            },
            {"name": f"{place}: wake (s, median of {opts.sample})", "value": round(found["wake"], 2)},
            {"name": f"{place}: req/s ratio Caddy / direct", "value": round(found["ratio"], 2)},
        ]
    print(json.dumps({
        "benchmark": "cluster",
        "figures": figures,
        "note": f"{opts.spaces} Gradio spaces on the local engine, then on a swarm of 1 and 3 nodes "
                "(deploy/swarm-lab.sh: engines in namespaces of one machine: 3 nodes share its cores)",
        "samples": {p: {"wake": r["wakes"], "deploy": r["deploys"]} for p, r in results.items()},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
