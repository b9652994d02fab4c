"""The host's GPUs: from SPACEDOCK_GPUS, or (auto) what nvidia-smi lists; none where it is missing."""

import functools
import shutil
import subprocess

from django.conf import settings


def parse_gpus(value: str) -> list[tuple[str, str]] | None:
    """(id, kind) for each GPU SPACEDOCK_GPUS names: "0,1", GPU UUIDs, or "0:t4,1:a10g" where the
    host mixes kinds (a flavour with a gpu_kind then gets only GPUs of that kind). None for "auto";
    [] for "" or "none"."""
    value = value.strip()
    if value.lower() == "auto":
        return None
    if value.lower() in ("", "none"):
        return []
    gpus = []
    for entry in value.split(","):
        gpu, _, kind = entry.strip().partition(":")
        if gpu:
            gpus.append((gpu, kind.strip().lower()))
    return gpus


def probe_nvidia_smi() -> list[tuple[str, str]]:
    """GPU indices nvidia-smi reports; [] without nvidia-smi or when it fails (no driver)."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return []
    try:
        out = subprocess.run(
            [binary, "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    # Kinds from nvidia-smi's names are not matched to flavours' (e.g. "NVIDIA A10G" and a10g):
    # an operator with mixed GPUs names them in SPACEDOCK_GPUS.
    return [(line.strip(), "") for line in out.splitlines() if line.strip().isdigit()]


@functools.cache
def host_gpus() -> tuple[tuple[str, str], ...]:
    """(id, kind) of the GPUs this host hands out, probed once per process."""
    named = parse_gpus(settings.GPUS)
    return tuple(probe_nvidia_smi() if named is None else named)
