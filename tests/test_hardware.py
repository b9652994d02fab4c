"""Hardware flavours, the container spec a flavour gives, and GPU assignment, against the database
only. This machine has no GPU: the GPU spec is the one that would be sent, and a GPU flavour without
GPUs is queued with a message, never started."""

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from docker.types import DeviceRequest

from spacedock.accounts.models import Quota, QuotaExceeded
from spacedock.hardware import gpus
from spacedock.hardware.flavours import Flavour, parse_names, parse_table
from spacedock.hardware.models import GpuAssignment, SpaceHardware, UnknownFlavour, place, release
from spacedock.hardware.resources import container_resources
from spacedock.spaces import config as spaceconfig
from spacedock.spaces.models import Space

pytestmark = [pytest.mark.fast, pytest.mark.django_db]


@pytest.fixture
def host_gpus(settings):
    """The host's GPUs as SPACEDOCK_GPUS names them, for one test."""

    def use(value: str) -> None:
        settings.GPUS = value
        gpus.host_gpus.cache_clear()

    yield use
    gpus.host_gpus.cache_clear()


def make_space(owner: str = "ada", name: str = "demo") -> Space:
    user = User.objects.get_or_create(username=owner)[0]
    return Space.objects.create(owner=user, name=name, subdomain=f"{owner}-{name}")


def test_default_table_has_the_hubs_names_and_cpu_basic_is_todays_limits(settings):
    table = parse_table("", 2, 4096)
    assert list(table) == ["cpu-basic", "cpu-upgrade", "t4-small", "a10g-small", "a100-large"]
    assert table["cpu-basic"] == Flavour("cpu-basic", 2, 4096)
    assert table["t4-small"].gpus == 1 and table["t4-small"].gpu_kind == "t4"
    assert settings.HARDWARE_DEFAULT == "cpu-basic"
    assert settings.QUOTA_HARDWARE == ["cpu-basic", "cpu-upgrade"]  # no GPU unless granted


def test_compact_and_json_tables_and_their_errors():
    table = parse_table("small:1:1024, gpu-shared:4:8192:1:t4:shared", 2, 4096)
    assert table["gpu-shared"] == Flavour("gpu-shared", 4, 8192, 1, "t4", True)
    assert parse_table('[{"name": "x", "cpus": 0.5, "memory_mb": 512}]', 2, 4096)["x"].cpus == 0.5
    for bad, says in [
        ("small:1", "name:cpus:memory_mb"),
        ("a:1:1,a:2:2", "listed twice"),
        ("Big:1:1", "flavour name"),
        ("a:0:1", "cpus > 0"),
        ("[1", "not valid JSON"),
        ("a:x:1", "bad flavour"),
    ]:
        with pytest.raises(ImproperlyConfigured, match=says):
            parse_table(bad, 2, 4096)
    with pytest.raises(ImproperlyConfigured, match="SPACEDOCK_QUOTA_HARDWARE.*'h100'"):
        parse_names("cpu-basic,h100", table | parse_table("", 2, 4096), "SPACEDOCK_QUOTA_HARDWARE")


def test_cpu_flavour_spec_has_limits_and_no_device_request(settings):
    spec = container_resources(settings.HARDWARE["cpu-upgrade"], [], host_cpus=16)
    assert spec.create_kwargs() == {
        "nano_cpus": 8_000_000_000,
        "mem_limit": "32768m",
        "memswap_limit": "32768m",
    }
    assert spec.env == {"SPACE_HARDWARE": "cpu-upgrade"}
    # An administrator's per-space limits win over the flavour's.
    assert (
        container_resources(settings.HARDWARE["cpu-upgrade"], [], 1.5, 2048).create_kwargs()["mem_limit"]
        == "2048m"
    )


def test_gpu_flavour_spec_requests_the_assigned_gpus_by_id(settings):
    spec = container_resources(settings.HARDWARE["t4-small"], ["3"])
    [request] = spec.create_kwargs()["device_requests"]
    assert isinstance(request, DeviceRequest)
    # What the engine receives: these ids, never a count that lets it pick any GPU.
    assert dict(request) == {
        "Driver": "nvidia", "Count": 0, "DeviceIDs": ["3"], "Capabilities": [["gpu"]], "Options": {},
    }  # fmt: skip
    assert spec.env["SPACE_HARDWARE"] == "t4-small"
    with pytest.raises(ValueError, match="needs 1 GPU"):
        container_resources(settings.HARDWARE["t4-small"], [])


def test_no_gpu_on_this_machine_is_queued_with_a_message(host_gpus):
    host_gpus("none")
    space = make_space()
    SpaceHardware.objects.create(space=space, requested="t4-small")
    placement = place(space)
    assert placement.queued and placement.resources is None
    assert placement.message.startswith(
        "Queued for hardware: t4-small needs 1 GPU(s) (t4) and this machine has none"
    )
    assert not GpuAssignment.objects.exists()


def test_auto_without_nvidia_smi_finds_no_gpu(host_gpus, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    host_gpus("auto")
    assert gpus.host_gpus() == ()


def test_two_spaces_never_share_a_gpu_and_release_frees_it(host_gpus):
    host_gpus("0,1")
    a, b, c = make_space(name="a"), make_space(name="b"), make_space(name="c")
    for space in (a, b, c):
        SpaceHardware.objects.create(space=space, requested="t4-small")
    ids_a, ids_b = (
        place(a).resources.device_requests[0]["DeviceIDs"],
        place(b).resources.device_requests[0]["DeviceIDs"],
    )
    assert {*ids_a, *ids_b} == {"0", "1"} and ids_a != ids_b
    assert place(a).resources.device_requests[0]["DeviceIDs"] == ids_a  # the runner asks again: same GPU
    third = place(c)
    assert third.queued and "all 2 are in use by other spaces" in third.message
    release(a)
    assert place(c).resources.device_requests[0]["DeviceIDs"] == ids_a


def test_shared_flavour_shares_only_with_shared_and_kinds_match(host_gpus, settings):
    settings.HARDWARE = parse_table(
        "cpu-basic:2:4096,t4-shared:2:4096:1:t4:shared,t4:4:8192:1:t4,a10g:4:8192:1:a10g", 2, 4096
    )
    host_gpus("0:t4,1:a10g")
    spaces = {name: make_space(name=name) for name in ("s1", "s2", "x", "g")}
    for name, flavour in (("s1", "t4-shared"), ("s2", "t4-shared"), ("x", "t4"), ("g", "a10g")):
        SpaceHardware.objects.create(space=spaces[name], requested=flavour)
    assert place(spaces["s1"]).resources.device_requests[0]["DeviceIDs"] == ["0"]
    assert place(spaces["s2"]).resources.device_requests[0]["DeviceIDs"] == ["0"]  # shared
    assert place(spaces["x"]).queued  # exclusive: GPU 0 is held, GPU 1 is an a10g
    assert place(spaces["g"]).resources.device_requests[0]["DeviceIDs"] == ["1"]


def test_request_checks_the_flavour_and_the_hardware_quota():
    space = make_space()
    with pytest.raises(
        UnknownFlavour, match="'h100' is not a hardware flavour here. Choose one of: cpu-basic"
    ):
        SpaceHardware.request(space, "h100", space.owner)
    with pytest.raises(
        QuotaExceeded,
        match=r"Quota exceeded: hardware \(t4-small is not among the flavours you may use: "
        r"cpu-basic, cpu-upgrade\)",
    ):
        SpaceHardware.request(space, "t4-small", space.owner)
    Quota.objects.create(user=space.owner, hardware="cpu-basic,t4-small", gpus=1)
    assert SpaceHardware.request(space, "t4-small", space.owner).requested == "t4-small"
    other = make_space(name="other")
    Space.objects.filter(pk=other.pk).update(stage="RUNNING")
    Space.objects.filter(pk=space.pk).update(stage="RUNNING")
    with pytest.raises(QuotaExceeded, match=r"Quota exceeded: gpus \(at most 1 GPUs across running spaces\)"):
        SpaceHardware.request(other, "t4-small", other.owner)


def test_a_change_of_flavour_restarts_a_deployed_space():
    space = make_space()
    space.builds.create(commit_sha="a" * 40, state="succeeded", image="i:1")
    Space.objects.filter(pk=space.pk).update(deployed_build=space.builds.first())
    space.refresh_from_db()
    generation = space.generation
    SpaceHardware.request(space, "cpu-upgrade", space.owner)
    assert Space.objects.get(pk=space.pk).generation == generation + 1
    SpaceHardware.request(space, "cpu-upgrade", space.owner)  # the same again: no restart
    assert Space.objects.get(pk=space.pk).generation == generation + 1


def test_suggested_hardware_is_read_from_front_matter_and_only_suggested():
    config = spaceconfig.parse("---\nsdk: gradio\nsuggested_hardware: t4-small\n---\n")
    assert config.suggested_hardware == "t4-small"
    space = make_space()
    space.builds.create(commit_sha="a" * 40, config=config.as_dict())
    assert SpaceHardware.suggested(space) == "t4-small"
    assert SpaceHardware.of(space).flavour().name == "cpu-basic"


def test_settings_page_shows_hardware_suggestion_queue_and_volumes(host_gpus, client):
    from spacedock.buckets.models import Bucket, SpaceVolume

    host_gpus("none")
    space = make_space()
    config = spaceconfig.parse("---\nsdk: gradio\nsuggested_hardware: a10g-small\n---\n")
    space.builds.create(commit_sha="a" * 40, config=config.as_dict())
    SpaceHardware.objects.create(space=space, requested="t4-small")
    Space.objects.filter(pk=space.pk).update(stage_message=place(space).message)
    bucket = Bucket.objects.create(owner=space.owner, name="cache")
    SpaceVolume.objects.create(
        space=space, type="bucket", source="ada/cache", mount_path="/data", bucket=bucket
    )
    client.force_login(space.owner)
    page = client.get("/ada/demo/settings").content.decode()
    assert "Runs on <strong>t4-small</strong>: 4 CPUs, 15360 MB, 1 GPU (t4)" in page
    assert "The README suggests <strong>a10g-small</strong>" in page
    assert "Queued for hardware: t4-small needs 1 GPU(s) (t4) and this machine has none" in page
    assert "<code>/data</code>" in page and "ada/cache" in page and "read-write" in page


@pytest.mark.parametrize(
    "env, says",
    [
        (
            {"SPACEDOCK_HARDWARE": "cpu-basic:2"},
            "SPACEDOCK_HARDWARE: 'cpu-basic:2' is not name:cpus:memory_mb",
        ),
        (
            {"SPACEDOCK_HARDWARE_DEFAULT": "h100"},
            "SPACEDOCK_HARDWARE_DEFAULT='h100' is not in SPACEDOCK_HARDWARE",
        ),
        ({"SPACEDOCK_QUOTA_HARDWARE": "cpu-basic,h100"}, "SPACEDOCK_QUOTA_HARDWARE: 'h100' is not a flavour"),
    ],
)
def test_a_bad_hardware_setting_stops_the_start_naming_it(env, says):
    import os
    import subprocess
    import sys

    started = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert started.returncode != 0 and says in started.stderr


def test_running_memory_quota_counts_each_spaces_flavour(settings):
    """A space on a big flavour uses its flavour's memory in the owner's running-memory quota, and
    moving a running space to a bigger flavour is refused when it would pass it."""
    basic = settings.HARDWARE["cpu-basic"].memory_mb
    big = make_space(name="big")
    small = make_space(name="small")
    for space in (big, small):
        space.builds.create(commit_sha="a" * 40, state="succeeded", image="i:1")
        Space.objects.filter(pk=space.pk).update(deployed_build=space.builds.first(), stage="RUNNING")
        space.refresh_from_db()
    Quota.objects.create(user=big.owner, hardware="cpu-basic,cpu-upgrade", running_memory_mb=basic * 3)
    assert big.run_memory_mb() == basic
    with pytest.raises(QuotaExceeded, match=r"Quota exceeded: running_memory_mb \(at most"):
        SpaceHardware.request(big, "cpu-upgrade", big.owner)  # 32 GB would pass three basic spaces
    assert SpaceHardware.of(big).requested == "cpu-basic"
    Quota.objects.filter(user=big.owner).update(running_memory_mb=basic + 32768)
    SpaceHardware.request(big, "cpu-upgrade", big.owner)
    assert Space.objects.get(pk=big.pk).run_memory_mb() == 32768
    # The small space may run beside it (exactly at the quota), a third basic one may not.
    small.check_run_quota()
    third = make_space(name="third")
    with pytest.raises(QuotaExceeded, match="running_memory_mb"):
        third.check_run_quota()
