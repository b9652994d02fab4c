"""Apps that flood the runner's log follower: a gigabyte without a newline, thousands of lines a
second. The runner's memory stays flat, the log keeps a cut line that says how much was cut and a
note of how many lines were dropped, and the space's log page still renders."""

import resource
import subprocess
import tracemalloc

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from runner import caddy
from runner.logstream import sampled, split_lines
from runner.reconcile import Runner
from spacedock.spaces.models import RunLogLine, Space
from tests.runner_fixtures import DOCKER

MB = 2**20

FLOOD = (
    "import sys\n"
    "out = sys.stdout.buffer\n"
    "for _ in range(64):\n"
    "    out.write(b'x' * (1 << 20))\n"
    "out.write(b'\\ndone\\n')\n"
    "for i in range(3000):\n"
    "    out.write(b'line %d\\n' % i)\n"
    "out.flush()\n"
)


@pytest.mark.fast
def test_a_gigabyte_without_a_newline_costs_one_line_of_memory():
    chunk = b"y" * MB

    def gigabyte():
        for _ in range(1024):
            yield chunk
        yield b"\nafter\n"

    tracemalloc.start()
    try:
        lines = list(split_lines(gigabyte(), limit=16_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MB  # a chunk or two in flight, never the line
    assert lines == ["y" * 16_000 + f"… [{1024 * MB - 16_000} more bytes cut]", "after"]


@pytest.mark.fast
def test_a_thousand_lines_in_a_second_keep_the_first_hundred_and_count_the_rest():
    ticks = iter([0.0] + [0.5] * 1000 + [1.2, 1.3])
    lines = [f"line {i}" for i in range(1000)] + ["next second", "and another"]
    kept = list(sampled(lines, rate=100, clock=lambda: next(ticks)))
    assert kept[:100] == lines[:100]
    assert "900 lines dropped" in kept[100] and "more than 100 lines a second" in kept[100]
    assert kept[101:] == ["next second", "and another"]


@pytest.mark.django_db(transaction=True)
def test_a_container_flooding_its_log_leaves_the_runner_flat_and_the_page_answering(images, client):
    owner = User.objects.create_user("flood")
    space = Space.objects.create(owner=owner, name="noise", subdomain="flood-noise")
    plain = images.sdk.split("/")[0] + "/plain:1"
    container = subprocess.run(
        [DOCKER, "run", "-d", "--label", f"spacedock.instance={settings.INSTANCE}",
         "--label", f"spacedock.space={space.pk}", plain, "python3", "-c", FLOOD],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    try:
        subprocess.run([DOCKER, "wait", container], capture_output=True, check=True, timeout=120)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        runner = Runner(caddy.Admin("127.0.0.1:9"), runner_id="flood-test")
        runner._follow(space.pk, container, None)  # what the follower thread runs, here to wait on it
        runner.pool.shutdown()
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    finally:
        subprocess.run([DOCKER, "rm", "-f", container], capture_output=True)
    texts = list(RunLogLine.objects.filter(space=space).order_by("number").values_list("text", flat=True))
    print(f"runner peak memory grew {grown_mb:.1f} MB; {len(texts)} lines stored")
    assert grown_mb < 50
    assert (
        texts[0].startswith("x" * 100)
        and "more bytes cut]" in texts[0]
        and len(texts[0]) <= settings.LOG_LINE_MAX
    )
    assert texts[1] == "done"
    assert any("lines dropped" in t for t in texts) and len(texts) < 3000
    assert client.get("/flood/noise/logs").status_code == 200
    body = b"".join(client.get("/api/spaces/flood/noise/logs/run").streaming_content).decode()
    assert "lines dropped" in body and "more bytes cut" in body
