"""Hardware flavours: the operator's table of what a space may run on (SPACEDOCK_HARDWARE).

Pure: settings.py parses the table with parse_table() at start, so a bad entry stops the start
with a message naming it. Names follow the Hub's where they fit (cpu-basic, t4-small, ...), so
`HfApi.request_space_hardware(repo, "t4-small")` asks for the same thing here as there.
"""

import json
import re
from dataclasses import asdict, dataclass

from django.core.exceptions import ImproperlyConfigured

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")


@dataclass(frozen=True)
class Flavour:
    name: str
    cpus: float
    memory_mb: int
    gpus: int = 0
    gpu_kind: str = ""
    # True: spaces on this flavour may share a GPU (each still gets `gpus` of them); False: a
    # GPU handed to one space is handed to no other until it is released.
    shared_gpu: bool = False

    @property
    def is_gpu(self) -> bool:
        return self.gpus > 0

    def as_dict(self) -> dict:
        return asdict(self)


def default_table(cpus: float, memory_mb: int) -> list[Flavour]:
    """The Hub's common flavours. cpu-basic is what every space got before flavours existed
    (SPACEDOCK_RUN_CPUS, SPACEDOCK_RUN_MEMORY_MB), so turning flavours on changes no running space."""
    return [
        Flavour("cpu-basic", cpus, memory_mb),
        Flavour("cpu-upgrade", 8, 32768),
        Flavour("t4-small", 4, 15360, 1, "t4"),
        Flavour("a10g-small", 4, 15360, 1, "a10g"),
        Flavour("a100-large", 12, 145408, 1, "a100"),
    ]


def _flavour(entry: object, where: str) -> Flavour:
    if isinstance(entry, str):
        # Compact: name:cpus:memory_mb[:gpus[:kind[:shared]]]
        parts = entry.strip().split(":")
        if not 3 <= len(parts) <= 6:
            raise ImproperlyConfigured(
                f"{where}: {entry!r} is not name:cpus:memory_mb[:gpus[:gpu_kind[:shared]]], "
                "e.g. t4-small:4:15360:1:t4"
            )
        keys = ("name", "cpus", "memory_mb", "gpus", "gpu_kind", "shared_gpu")
        entry = dict(zip(keys, parts, strict=False))
        if "shared_gpu" in entry:
            entry["shared_gpu"] = entry["shared_gpu"].lower() in ("1", "true", "yes", "shared")
    if not isinstance(entry, dict):
        raise ImproperlyConfigured(f"{where}: each flavour is an object or a name:cpus:memory_mb string")
    try:
        flavour = Flavour(
            name=str(entry["name"]),
            cpus=float(entry["cpus"]),
            memory_mb=int(entry["memory_mb"]),
            gpus=int(entry.get("gpus") or 0),
            gpu_kind=str(entry.get("gpu_kind") or ""),
            shared_gpu=bool(entry.get("shared_gpu", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"{where}: bad flavour {entry!r} ({exc})") from None
    if not NAME_RE.fullmatch(flavour.name):
        raise ImproperlyConfigured(f"{where}: flavour name {flavour.name!r}: use a-z, 0-9, '.', '_', '-'")
    if flavour.cpus <= 0 or flavour.memory_mb <= 0 or flavour.gpus < 0:
        raise ImproperlyConfigured(
            f"{where}: flavour {flavour.name!r} needs cpus > 0, memory_mb > 0, gpus >= 0"
        )
    return flavour


def parse_table(
    value: str, cpus: float, memory_mb: int, where: str = "SPACEDOCK_HARDWARE"
) -> dict[str, Flavour]:
    """The table by name: a JSON list of objects, or comma-separated compact entries; empty: defaults."""
    value = value.strip()
    if not value:
        flavours = default_table(cpus, memory_mb)
    elif value.startswith("["):
        try:
            entries = json.loads(value)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(entries, list):
            raise ImproperlyConfigured(f"{where}: expected a JSON list of flavours")
        flavours = [_flavour(entry, where) for entry in entries]
    else:
        flavours = [_flavour(entry, where) for entry in value.split(",") if entry.strip()]
    table = {}
    for flavour in flavours:
        if flavour.name in table:
            raise ImproperlyConfigured(f"{where}: flavour {flavour.name!r} is listed twice")
        table[flavour.name] = flavour
    if not table:
        raise ImproperlyConfigured(f"{where}: no flavour defined")
    return table


def parse_names(value: str, table: dict[str, Flavour], where: str) -> list[str]:
    """A comma-separated list of flavour names, each in the table ('*': all of them)."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    if names == ["*"]:
        return list(table)
    for name in names:
        if name not in table:
            raise ImproperlyConfigured(
                f"{where}: {name!r} is not a flavour of SPACEDOCK_HARDWARE ({', '.join(table)})"
            )
    return names
