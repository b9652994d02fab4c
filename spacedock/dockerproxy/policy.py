"""What the build worker may ask of each Docker engine, and nothing more.

The worker parses tenants' input (git, tar, YAML, Dockerfiles' results); a Docker socket is root
on the host (`POST /containers/create` with `Privileged` and a bind mount of `/`). So the worker
reaches the engines only through this policy (server.py): it may build (BuildKit's session
included), push to and pull from the registry, inspect and list, tag into the registry's names
and remove this instance's images. Anything else is refused with a 403 that names the rule.
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from django.conf import settings

from spacedock.labels import LABEL_INSTANCE

_VERSION = re.compile(r"^/v\d+\.\d+(?=/)")
NAME = r"[A-Za-z0-9][A-Za-z0-9._:/@+-]*"
# /build's query: what the builder sends (builder/docker_build.py, the CLI under BuildKit). Absent
# on purpose: extrahosts, isolation, squash; networkmode only "default".
BUILD_QUERY = {
    "t", "dockerfile", "labels", "buildargs", "nocache", "remote", "session", "version", "rm",
    "forcerm", "q", "pull", "target", "platform", "outputs", "buildid", "cachefrom", "networkmode",
    "shmsize", "memory", "memswap", "cpushares", "cpusetcpus", "cpusetmems", "cpuperiod", "cpuquota",
    "cgroupparent", "ulimits",
}  # fmt: skip
# The CLI sends these at their empty value; any other would take one build out of the build
# engine's cgroup (cgroupparent) or past its limits.
EMPTY_ONLY = {
    **dict.fromkeys(("shmsize", "memory", "cpushares", "cpuperiod", "cpuquota"), ("", "0")),
    "memswap": ("", "0", "-1"),
    **dict.fromkeys(("cpusetcpus", "cpusetmems", "cgroupparent"), ("",)),
    "ulimits": ("", "null", "[]"),
}


@dataclass
class Request:
    method: str
    path: str  # decoded, without the API version
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names


class Refused(Exception):
    pass


def parse_target(method: str, target: str, headers: dict[str, str]) -> Request:
    parts = urlsplit(target)
    path = unquote(parts.path)
    if not path.startswith("/") or ".." in path or "//" in path or any(c < " " for c in path):
        raise Refused(f"a malformed path {target[:100]!r}")
    return Request(method, _VERSION.sub("", path), parse_qs(parts.query, keep_blank_values=True), headers)


def _one(request: Request, key: str) -> str:
    values = request.query.get(key, [""])
    if len(values) != 1:
        raise Refused(f"{key} given {len(values)} times")
    return values[0]


def _registry_name(engine: str) -> str:
    host = settings.BUILD_REGISTRY if engine == "build" else settings.REGISTRY
    return f"{host}/{settings.INSTANCE}/"


def check_build(request: Request, engine: str, inspect) -> None:
    unknown = set(request.query) - BUILD_QUERY
    if unknown:
        raise Refused(f"build options {sorted(unknown)}")
    if _one(request, "networkmode") not in ("", "default"):
        raise Refused("a build network other than the engine's default")
    for key in EMPTY_ONLY.keys() & request.query.keys():
        if _one(request, key) not in EMPTY_ONLY[key]:
            raise Refused(f"a build's own {key}: the build engine's cgroup and limits hold for every build")


def check_session(request: Request, engine: str, inspect) -> None:
    # The engine hijacks the connection at once for h2c: no further HTTP request can follow on it.
    if request.headers.get("upgrade", "").lower() != "h2c":
        raise Refused("a BuildKit session without `Upgrade: h2c`")


def check_tag(request: Request, engine: str, inspect) -> None:
    if not _one(request, "repo").startswith(_registry_name(engine)):
        raise Refused(f"a tag outside {_registry_name(engine)} (only the registry's names of this instance)")
    _ours(request.path.removeprefix("/images/").removesuffix("/tag"), inspect)


def check_ours(request: Request, engine: str, inspect) -> None:
    _ours(request.path.removeprefix("/images/"), inspect)


def _ours(name: str, inspect) -> None:
    labels = inspect(name)
    if labels is not None and labels.get(LABEL_INSTANCE) != settings.INSTANCE:
        raise Refused(f"touching {name}: it is not this instance's image")


def check_push(request: Request, engine: str, inspect) -> None:
    name = request.path.removeprefix("/images/").removesuffix("/push")
    if not name.startswith(_registry_name("build")):
        raise Refused(f"a push of {name} (only to {_registry_name('build')})")


def check_pull(request: Request, engine: str, inspect) -> None:
    if not _one(request, "fromImage").startswith(_registry_name("runtime")) or "fromSrc" in request.query:
        raise Refused(f"a pull from outside {_registry_name('runtime')}")


def check_prune(request: Request, engine: str, inspect) -> None:
    try:
        filters = json.loads(_one(request, "filters") or "{}")
    except ValueError:
        raise Refused("unreadable prune filters") from None
    labels = filters.get("label", [])
    labels = list(labels) if isinstance(labels, (list, dict)) else []
    if f"{LABEL_INSTANCE}={settings.INSTANCE}" not in labels:
        raise Refused("a prune that is not limited to this instance's images")


Check = Callable[[Request, str, Callable], None] | None
COMMON: list[tuple[str, str, Check]] = [
    ("GET", r"/_ping", None),
    ("HEAD", r"/_ping", None),
    ("GET", r"/version", None),
    ("GET", r"/info", None),
    ("GET", r"/images/json", None),
    ("GET", rf"/images/{NAME}/json", None),
    ("POST", rf"/images/{NAME}/tag", check_tag),
    ("DELETE", rf"/images/{NAME}", check_ours),
]
RULES: dict[str, list[tuple[str, str, Check]]] = {
    "build": COMMON
    + [
        ("POST", r"/build", check_build),
        ("POST", r"/build/cancel", None),
        ("POST", r"/session", check_session),
        ("POST", rf"/images/{NAME}/push", check_push),
    ],
    "runtime": COMMON
    + [
        ("POST", r"/images/create", check_pull),
        ("POST", r"/images/prune", check_prune),
        ("GET", r"/containers/json", None),
    ],
}


def check(request: Request, engine: str, inspect: Callable[[str], dict | None]) -> None:
    """Raises Refused unless `request` is one the worker needs; `inspect(name)` gives an image's
    labels on that engine (None when there is no such image)."""
    for method, pattern, extra in RULES[engine]:
        if request.method == method and re.fullmatch(pattern, request.path):
            if extra is not None:
                extra(request, engine, inspect)
            return
    raise Refused(f"{request.method} {request.path}")
