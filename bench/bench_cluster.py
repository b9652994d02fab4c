"""Cluster benchmark: the same sleeping-and-waking spaces on one host and on a Docker Swarm of 1
and 3 nodes.

    .venv/bin/python bench/bench_cluster.py [--spaces 60] [--concurrency 3] [--sample 10]   # root

Starts a registry, Caddy and the runner's reconcile loop in this process (no web: wakes go
through `stages.wake`, as the wake page does), and for each place (the local engine, then a
swarm of 1 and of 3 nodes from deploy/swarm-lab.sh, in a lab of its own: 198.18.18.0/24...)
reports:

- bring-up: N spaces deployed, at most --concurrency of them awake at a time; each is a space
  with the sleep time of a user's that wants it awake (-1) until it first answers through Caddy,
  then a sleep time of --sleep-after seconds, so the runner's own idle check puts it to sleep and
  stops it, and the next one is deployed. Total time, and each space's time from its build handed
  to the runner to its first answer through Caddy (median of N);
- wake: --sample of the N spaces (spread over them) woken one after another while all the others
  sleep, until each answers through Caddy (s, median);
- deploy to live: each woken sample space then gets a new version's image (built, in the
  registry), until the new version answers through Caddy (s, median); with the build's own time
  (bench_runtime.py, the same on any node) this is push-to-live. It goes back to sleep before the
  next one wakes;
- req/s through Caddy to one awake space against the same app directly (its node's address and
  port), driven by wrk, three alternating pairs, the median ratio;
- the machine's load average while it measured, and the most app containers alive at once on the
  place's engines (a space the runner stopped on Swarm ignores the stop signal for
  SPACEDOCK_SWARM_STOP_GRACE seconds, so on Swarm more containers are alive than awake spaces).

The runner itself starts every deployed space at once (its reconcile loop has no bound on starts
in flight): on a 2-core machine 60 Gradio apps importing at once take minutes each, so the bound
on spaces awake at a time is this bench's, as a lab's own users would keep most spaces asleep.
The issue's figure is the default, 60 spaces; `--spaces 6 --sample 3` is a quick check.
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
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SPACEDOCK_INSTANCE", "benchcl")
os.environ.setdefault("SPACEDOCK_DATA_DIR", tempfile.mkdtemp(prefix="spacedock-bench-cluster-"))
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"

import django  # noqa: E402
import docker  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from runner import caddy  # noqa: E402
from runner.local import LocalBackend  # noqa: E402
from runner.models import Runtime  # noqa: E402
from runner.reconcile import Runner  # noqa: E402
from runner.swarm import SwarmBackend  # noqa: E402
from spacedock.labels import LABEL_INSTANCE  # noqa: E402
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


LAB, LAB_NET = "sdbcl", 18  # not the tests' lab (sdsw, 198.18.210.0/24): both may run at once


def loop_until(runner: Runner, done, watch: "Watch", seconds: float = 900) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        runner.tick(wait=True)
        watch.look()
        time.sleep(0.2)


@dataclasses.dataclass
class Watch:
    """The machine's load and the app containers alive on the place's engines, looked at every 2 s."""

    engines: list[str]  # Docker sockets; "" for the main engine
    loads: list[float] = dataclasses.field(default_factory=list)
    containers: int = 0
    seen: float = 0.0

    def look(self) -> None:
        if time.monotonic() - self.seen < 2:
            return
        self.seen = time.monotonic()
        self.loads.append(os.getloadavg()[0])
        alive = 0
        for socket in self.engines:
            client = docker.DockerClient(base_url=socket) if socket else docker.from_env()
            alive += len(client.containers.list(filters={"label": f"{LABEL_INSTANCE}={settings.INSTANCE}"}))
            client.close()
        self.containers = max(self.containers, alive)


def live(space: Space, proxy_port: int, image: str = "") -> bool:
    now = Space.objects.get(pk=space.pk)
    return (
        now.stage == "RUNNING"
        and (not image or now.running_image == image)
        and answers(f"http://127.0.0.1:{proxy_port}/config", f"{now.host}:{proxy_port}")
    )


def asleep(runner: Runner, pk: int) -> bool:
    return Space.objects.filter(pk=pk, stage="SLEEPING").exists() and not runner.backend.instances(pk)


def node_of(pk: int) -> str:
    return Runtime.objects.get(space_id=pk).address or "127.0.0.1"


def bring_up(
    place: str, runner: Runner, image: str, opts: argparse.Namespace, proxy_port: int, watch: Watch
) -> tuple[list[int], list[float], Counter]:
    """N spaces, at most --concurrency awake at a time: each deployed, answering once, then left
    to the runner's idle check, which puts it to sleep; a slot frees once its space is stopped."""
    pending = list(range(opts.spaces))
    awake: dict[int, float] = {}  # space -> when its build was handed to the runner
    answered: set[int] = set()
    names, firsts, nodes = [], [], Counter()
    while pending or awake:
        while pending and len(awake) < opts.concurrency:
            space = rf.deployed("bench", f"{place}-{pending.pop(0)}", image)
            Space.objects.filter(pk=space.pk).update(sleep_time=-1)
            awake[space.pk] = time.monotonic()
            names.append(space.pk)
        runner.tick(wait=True)
        watch.look()
        for pk, started in list(awake.items()):
            if pk not in answered and live(Space(pk=pk), proxy_port):
                firsts.append(time.monotonic() - started)
                nodes[node_of(pk)] += 1
                answered.add(pk)
                Space.objects.filter(pk=pk).update(sleep_time=opts.sleep_after)
            elif pk in answered and asleep(runner, pk):
                del awake[pk]
            elif time.monotonic() - started > 900:
                raise SystemExit(f"space {pk} did not answer and sleep within 900 s")
        time.sleep(0.2)
    return names, firsts, nodes


def wrk_ratio(pk: int, proxy_port: int, seconds: float) -> float:
    """Median of three alternating pairs: through Caddy, then straight to the app."""
    space = Space.objects.get(pk=pk)
    host = f"{space.host}:{proxy_port}"
    ratios = []
    for _ in range(3):
        proxied = wrk(f"http://127.0.0.1:{proxy_port}/config", host, seconds)
        direct = wrk(f"http://{node_of(pk)}:{space.port}/config", host, seconds)
        ratios.append(proxied / direct)
    return statistics.median(ratios)


def measure(
    place: str,
    runner: Runner,
    images: tuple[str, str],
    opts: argparse.Namespace,
    proxy_port: int,
    engines: list[str],
) -> dict:
    image, new_image = images
    Space.objects.all().delete()
    runner.converge(2)
    watch = Watch(engines)
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    names, firsts, spread = bring_up(place, runner, image, opts, proxy_port, watch)
    bring_up_s = time.monotonic() - started
    step = max(1, len(names) // opts.sample)
    wakes, deploys, woken_on = [], [], Counter()
    for pk in names[::step][: opts.sample]:
        # A visitor's space stays awake while measured: the idle check must not race the clock.
        Space.objects.filter(pk=pk).update(sleep_time=-1)
        space = Space.objects.get(pk=pk)
        began = time.monotonic()
        stages.wake(space)
        loop_until(runner, lambda s=space: live(s, proxy_port), watch)
        wakes.append(time.monotonic() - began)
        woken_on[node_of(pk)] += 1
        began = time.monotonic()
        rf.publish(space, new_image)
        loop_until(runner, lambda s=space: live(s, proxy_port, new_image), watch)
        deploys.append(time.monotonic() - began)
        Space.objects.filter(pk=pk).update(sleep_time=opts.sleep_after)
        loop_until(runner, lambda p=pk: asleep(runner, p), watch)
    one = names[0]
    Space.objects.filter(pk=one).update(sleep_time=-1)
    stages.wake(Space.objects.get(pk=one))
    loop_until(runner, lambda: live(Space(pk=one), proxy_port), watch)
    ratio = wrk_ratio(one, proxy_port, opts.seconds)
    watch.look()
    Space.objects.update(paused=True)
    runner.converge(2)
    found = {
        "bring_up": bring_up_s,
        "first_answer": statistics.median(firsts),
        "wake": statistics.median(wakes),
        "deploy": statistics.median(deploys),
        "ratio": ratio,
        "load_before": load_before,
        "load_max": max(watch.loads or [load_before]),
        "load_mean": statistics.mean(watch.loads or [load_before]),
        "containers_max": watch.containers,
        "spread": dict(spread),
        "woken_on": dict(woken_on),
        "firsts": firsts,
        "wakes": wakes,
        "deploys": deploys,
    }
    print(f"{place}: bring up {opts.spaces} ({opts.concurrency} awake at most) in {bring_up_s:.0f} s, "
          f"first answer median {found['first_answer']:.1f} s, wake median {found['wake']:.1f} s, "
          f"deploy-to-live median {found['deploy']:.1f} s, req/s ratio {ratio:.2f}, "
          f"load {load_before:.1f} before / {found['load_mean']:.1f} mean / {found['load_max']:.1f} max, "
          f"{watch.containers} containers at most, spread {dict(spread)}, woken on {dict(woken_on)}",
          flush=True)  # fmt: skip
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spaces", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=3, help="spaces awake at most at a time")
    parser.add_argument("--sleep-after", type=int, default=5, help="the spaces' sleep time once answered (s)")
    parser.add_argument(
        "--sample", type=int, default=10, help="spaces (of all) woken and redeployed one by one"
    )
    parser.add_argument("--seconds", type=float, default=5, help="each wrk run")
    parser.add_argument("--memory-mb", type=int, default=1024, help="each space's memory limit")
    opts = parser.parse_args()
    opts.sample = min(opts.sample, opts.spaces)
    call_command("migrate", verbosity=0)
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    proxy_port, admin = conftest.free_port(), f"127.0.0.1:{conftest.free_port()}"
    settings.CADDY_ADMIN, settings.LISTEN = admin, f"127.0.0.1:{proxy_port}"
    settings.CADDY_ACCESS_LOG, settings.DRAIN_TIMEOUT = work / "access.log", 5
    # Swarm reserves each space's limit on its node; only the awake ones hold it.
    basic = settings.HARDWARE[settings.HARDWARE_DEFAULT]
    settings.HARDWARE[basic.name] = dataclasses.replace(basic, memory_mb=opts.memory_mb)
    env = conftest.process_env()
    log = open(work / "registry.log", "wb")
    registry = subprocess.Popen(["bash", "deploy/registry.sh"], cwd=ROOT, env=env, stdout=log, stderr=log)
    caddy_proc = rf.start_caddy(admin, work / "caddy.log")
    results = {}
    load_at_start = os.getloadavg()
    try:
        time.sleep(2)  # the registry answers 401 to everyone: give it its start
        images = rf.build_images(work / "images")
        local = Runner(caddy.Admin(admin), runner_id="bench-local", runtime=LocalBackend())
        pair = (images.hello, images.hello2)
        results["local"] = measure("local", local, pair, opts, proxy_port, [""])
        local.shutdown()
        for nodes in (1, 3):
            out = swarm_lab.script("up", str(nodes), lab=LAB, net=LAB_NET)
            try:
                lines = [line.split() for line in out.splitlines()]
                pair = (
                    swarm_lab.push(images.hello, "bench-hello"),
                    swarm_lab.push(images.hello2, "bench-hello2"),
                )
                runner = Runner(
                    caddy.Admin(admin), runner_id=f"bench-{nodes}", runtime=SwarmBackend(lines[0][3])
                )
                engines = [line[3] for line in lines]
                results[f"swarm{nodes}"] = measure(f"swarm{nodes}", runner, pair, opts, proxy_port, engines)
                runner.shutdown()
            finally:
                swarm_lab.script("down", lab=LAB, net=LAB_NET)
    finally:
        caddy_proc.terminate()
        registry.terminate()
    n, s = opts.spaces, opts.sample
    figures = []
    for place, found in results.items():
        rows = [
            (f"bring up {n} spaces, {opts.concurrency} awake at most (s)", round(found["bring_up"])),
            (f"a space's start to first answer (s, median of {n})", round(found["first_answer"], 2)),
            (f"wake, the others asleep (s, median of {s})", round(found["wake"], 2)),
            (f"deploy to live (s, median of {s})", round(found["deploy"], 2)),
            ("req/s Caddy / direct (median of 3 pairs)", round(found["ratio"], 2)),
            ("load average while measured (1 min, mean)", round(found["load_mean"], 1)),
            ("app containers alive at once (most)", found["containers_max"]),
        ]
        figures += [{"name": f"{place}: {name}", "value": value} for name, value in rows]
    if {"swarm1", "swarm3"} <= results.keys():
        one, three = results["swarm1"], results["swarm3"]
        for key, what in (("bring_up", "bring-up"), ("first_answer", "first answer"), ("wake", "wake"),
                          ("deploy", "deploy to live"), ("ratio", "req/s ratio")):  # fmt: skip
            figures.append({"name": f"3 nodes / 1 node: {what}", "value": round(three[key] / one[key], 2)})
    loads = ", ".join(
        f"{p} {r['load_before']:.1f} at its start, {r['load_mean']:.1f} mean, {r['load_max']:.1f} most"
        for p, r in results.items()
    )
    spread = "; ".join(
        f"{p}: {r['spread']} (woken: {r['woken_on']})" for p, r in results.items() if p != "local"
    )
    print(json.dumps({
        "benchmark": "cluster",
        "figures": figures,
        "note": f"{n} Gradio spaces, at most {opts.concurrency} awake at a time (each answers once, then "
                f"sleeps after {opts.sleep_after} s idle by the runner's idle check); {s} of them woken and "
                "redeployed one by one while the others sleep; on the local engine, then on a swarm of 1 "
                "and 3 nodes (deploy/swarm-lab.sh: engines in network namespaces of this one machine, so "
                f"the nodes share its {os.cpu_count()} cores). Load average (1 min) when the run began "
                f"{load_at_start[0]:.1f}; while measured: {loads}. Spaces per node at bring-up: {spread}.",
        "samples": {
            p: {"first_answer": r["firsts"], "wake": r["wakes"], "deploy": r["deploys"]}
            for p, r in results.items()
        },
    }))  # fmt: skip


if __name__ == "__main__":
    main()
