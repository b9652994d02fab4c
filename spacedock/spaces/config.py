"""A space's README front matter, read the way the Hugging Face Hub reads it.

Any error here ends in a message meant for the demo author: what is wrong and
what to write instead.
"""

import re
from dataclasses import asdict, dataclass, field, fields

import yaml
from django.conf import settings

SDKS = ("gradio", "docker", "static")
COLORS = ("red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray")
VERSION_RE = re.compile(r"\d+(\.\d+){0,2}")
DURATION_RE = re.compile(r"(\d+)\s*([smh]?)")
FRONT_MATTER_RE = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n(---|\.\.\.)[ \t]*(\r?\n|\Z)", re.S)
# Front matter is a few lines of settings. A cap, and no aliases: a 500-byte block of nested
# aliases expands into gigabytes once anything walks it (the page, an error message).
FRONT_MATTER_MAX_BYTES = 16 * 1024
# What the Space columns hold: a longer value is the author's mistake, said as such.
MAX_LENGTHS = {"title": 200, "emoji": 20, "license": 50, "sdk_version": 20, "python_version": 10,
               "app_file": 200}  # fmt: skip
MAX_LIST_ITEMS, MAX_LIST_ITEM_LENGTH = 50, 100

EXAMPLE = "---\ntitle: My demo\nsdk: gradio\napp_file: app.py\n---"


class ConfigError(Exception):
    """The README does not describe a space we can build; the text says how to fix it."""


def excerpt(value: object, limit: int = 60) -> str:
    """A value as an error message may quote it: never more than a short piece of it."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class SpaceConfig:
    title: str = ""
    emoji: str = "🚀"
    colorFrom: str = "blue"
    colorTo: str = "indigo"
    sdk: str = "gradio"
    sdk_version: str = ""
    python_version: str = ""
    app_file: str = ""
    app_port: int = 7860
    short_description: str = ""
    tags: list[str] = field(default_factory=list)
    pinned: bool = False
    license: str = ""
    startup_duration_timeout: int = 1800  # seconds; the Hub's "30m"
    disable_embedding: bool = False
    # Response headers the app's host sends (the Hub allows these three cross-origin policies).
    custom_headers: dict[str, str] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    # "Sign in with" for the app (gr.LoginButton): the Hub's keys; see accounts/oauth.py.
    hf_oauth: bool = False
    hf_oauth_scopes: list[str] = field(default_factory=list)
    hf_oauth_expiration_minutes: int = 480
    # A flavour the author suggests (the Hub's key); shown to the owner, never applied by itself.
    suggested_hardware: str = ""

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SpaceConfig":
        """A config stored with as_dict(); keys this version no longer knows are left out."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def front_matter(readme: str) -> dict:
    match = FRONT_MATTER_RE.match(readme)
    if not match:
        raise ConfigError(
            "README.md has no front matter. Start it with a YAML block between '---' lines, "
            f"for example:\n{EXAMPLE}"
        )
    block = match.group(1)
    if len(block.encode()) > FRONT_MATTER_MAX_BYTES:
        raise ConfigError(
            f"README.md front matter is {len(block.encode()) // 1024} KiB; the limit is "
            f"{FRONT_MATTER_MAX_BYTES // 1024} KiB. Keep settings there and move the rest below it."
        )
    try:
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(block, Loader=yaml.SafeLoader)):
            raise ConfigError(
                "README.md front matter uses a YAML alias (*name). Write each value out instead."
            )
        data = yaml.safe_load(block)
    except yaml.YAMLError as exc:
        where = ""
        if mark := getattr(exc, "problem_mark", None):
            # +2: the opening '---' line, and YAML counts from zero.
            where = f" at line {mark.line + 2}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"README.md front matter is not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("README.md front matter must be a list of 'key: value' lines")
    return data


def _text(data: dict, key: str, default: str) -> str:
    value = data.get(key, default)
    if value is None:
        return default
    if isinstance(value, (dict, list)):
        raise ConfigError(f"'{key}' in README.md must be a single value, not {type(value).__name__}")
    text = str(value).strip()
    if key in MAX_LENGTHS and len(text) > MAX_LENGTHS[key]:
        raise ConfigError(
            f"'{key}' in README.md is {len(text)} characters long; at most {MAX_LENGTHS[key]} fit: "
            f"{excerpt(text)}"
        )
    return text


def _strings(data: dict, key: str) -> list[str]:
    value = data.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or any(isinstance(v, (dict, list)) for v in value):
        raise ConfigError(f"'{key}' in README.md must be a list, for example: {key}: [a, b]")
    items = [str(v) for v in value]
    if len(items) > MAX_LIST_ITEMS or any(len(item) > MAX_LIST_ITEM_LENGTH for item in items):
        raise ConfigError(
            f"'{key}' in README.md may hold {MAX_LIST_ITEMS} entries of at most "
            f"{MAX_LIST_ITEM_LENGTH} characters each"
        )
    return items


def _bool(data: dict, key: str) -> bool:
    value = data.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ConfigError(f"'{key}' in README.md must be true or false, not {excerpt(value)}")
    return value


# The Hub's list: the headers a space may set on its responses, and the values each takes.
CUSTOM_HEADERS = {
    "cross-origin-embedder-policy": ("unsafe-none", "require-corp", "credentialless"),
    "cross-origin-opener-policy": ("unsafe-none", "same-origin-allow-popups", "same-origin"),
    "cross-origin-resource-policy": ("same-site", "same-origin", "cross-origin"),
}


def _custom_headers(data: dict) -> dict[str, str]:
    value = data.get("custom_headers") or {}
    if not isinstance(value, dict):
        raise ConfigError(
            "'custom_headers' in README.md must be a map of header: value, for example:\n"
            "custom_headers:\n  cross-origin-opener-policy: same-origin"
        )
    headers = {}
    for name, setting in value.items():
        allowed = CUSTOM_HEADERS.get(str(name).strip().lower())
        if allowed is None:
            raise ConfigError(
                f"custom_headers: {excerpt(name)} cannot be set; a space may set only "
                + ", ".join(CUSTOM_HEADERS)
            )
        if str(setting).strip() not in allowed:
            raise ConfigError(
                f"custom_headers: {str(name).strip().lower()} {excerpt(setting)} is not one of "
                + ", ".join(allowed)
            )
        headers[str(name).strip().lower()] = str(setting).strip()
    return headers


def _duration(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = DURATION_RE.fullmatch(str(value).strip())
    if not match:
        raise ConfigError(
            f"startup_duration_timeout {excerpt(value)} is not a duration: write it like 30m, 1h or 90s"
        )
    number, unit = int(match.group(1)), match.group(2) or "s"
    return number * {"s": 1, "m": 60, "h": 3600}[unit]


def _seconds_text(seconds: int) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _startup_timeout(value: object) -> int:
    """A config error past the server's cap: a silently shorter wait would fail a slow app later,
    with a message about HTTP instead of about the README."""
    seconds = _duration(value)
    cap = settings.MAX_STARTUP_SECONDS
    if seconds > cap:
        raise ConfigError(
            f"startup_duration_timeout {excerpt(value)} is over this server's limit: "
            f"write at most {_seconds_text(cap)} (SPACEDOCK_MAX_STARTUP_SECONDS is {cap} s)"
        )
    if seconds < 0:
        raise ConfigError(f"startup_duration_timeout {excerpt(value)} must not be negative")
    return seconds


def offered_pythons() -> list[str]:
    return sorted(settings.PYTHON_IMAGES, key=lambda v: tuple(int(p) for p in v.split(".")))


def _python_version(data: dict, sdk: str) -> str:
    """The interpreter a build uses, as major.minor (3.11.4 and 3.11 are both 3.11); "" is the
    base image's. Only interpreters the operator offers (SPACEDOCK_PYTHON_IMAGES) are accepted:
    an app built with another Python than it asked for fails later, and in ways harder to read."""
    raw = data.get("python_version")
    version = _text(data, "python_version", "")
    if not version or version == "3":
        return ""
    offered = offered_pythons()
    hint = ""
    if isinstance(raw, float):
        # YAML reads python_version: 3.10 as the number 3.1.
        hint = f' Write it in quotes, for example python_version: "{version}0" for {version}0.'
    if not VERSION_RE.fullmatch(version):
        raise ConfigError(f"python_version {excerpt(version)} is not a version like {offered[-1]}.{hint}")
    minor = ".".join(version.split(".")[:2])
    if sdk == "docker":
        return minor  # the space's own Dockerfile picks its interpreter, as on the Hub
    if minor not in settings.PYTHON_IMAGES:
        raise ConfigError(
            f"python_version {version} is not offered here. This server builds with Python "
            f'{", ".join(offered)}: write python_version: "{offered[-1]}" (or leave it out for '
            f"{settings.BASE_PYTHON}).{hint}"
        )
    return minor


def parse(readme: str) -> SpaceConfig:
    """Reads and checks the front matter; raises ConfigError with what to fix."""
    data = front_matter(readme)
    sdk = _text(data, "sdk", "")
    if not sdk:
        raise ConfigError(f"README.md front matter has no 'sdk'. Add one of: {', '.join(SDKS)}")
    if sdk == "streamlit":
        raise ConfigError(
            "sdk: streamlit is not run here. Run it as sdk: docker, with a Dockerfile that installs "
            "streamlit and starts `streamlit run app.py --server.port 7860 --server.address 0.0.0.0`."
        )
    if sdk not in SDKS:
        raise ConfigError(
            f"sdk {excerpt(sdk)} is not supported here. Spacedock runs these: {', '.join(SDKS)}"
        )
    config = SpaceConfig(sdk=sdk)
    config.title = _text(data, "title", "")
    config.emoji = _text(data, "emoji", config.emoji)
    for key in ("colorFrom", "colorTo"):
        color = _text(data, key, getattr(config, key))
        if color not in COLORS:
            raise ConfigError(
                f"{key} {excerpt(color)} is not a color we know. Use one of: {', '.join(COLORS)}"
            )
        setattr(config, key, color)
    config.sdk_version = _text(data, "sdk_version", "")
    if sdk == "gradio":
        config.sdk_version = config.sdk_version or settings.DEFAULT_GRADIO_VERSION
        if not VERSION_RE.fullmatch(config.sdk_version):
            raise ConfigError(f"sdk_version {excerpt(config.sdk_version)} is not a version like 5.9.1")
    config.python_version = _python_version(data, sdk)
    default_app_file = {"gradio": "app.py", "static": "index.html", "docker": ""}[sdk]
    config.app_file = _text(data, "app_file", default_app_file)
    if config.app_file and (config.app_file.startswith("/") or ".." in config.app_file.split("/")):
        raise ConfigError(f"app_file {excerpt(config.app_file)} must be a path inside the repository")
    port = data.get("app_port", 7860)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"app_port {excerpt(port)} must be a port number between 1 and 65535")
    config.app_port = port
    config.short_description = _text(data, "short_description", "")[:200]
    config.license = _text(data, "license", "")
    config.tags = _strings(data, "tags")
    config.models = _strings(data, "models")
    config.datasets = _strings(data, "datasets")
    config.suggested_hardware = _text(data, "suggested_hardware", "")[:40]
    config.pinned = _bool(data, "pinned")
    config.disable_embedding = _bool(data, "disable_embedding")
    config.custom_headers = _custom_headers(data)
    config.hf_oauth = _bool(data, "hf_oauth")
    config.hf_oauth_scopes = _strings(data, "hf_oauth_scopes")
    minutes = data.get("hf_oauth_expiration_minutes", 480)
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 30 <= minutes <= 43200:
        raise ConfigError(
            f"hf_oauth_expiration_minutes {excerpt(minutes)} must be a number of minutes from 30 to 43200"
        )
    config.hf_oauth_expiration_minutes = minutes
    if "startup_duration_timeout" in data:
        config.startup_duration_timeout = _startup_timeout(data["startup_duration_timeout"])
    return config


def required_file(config: SpaceConfig) -> str:
    """The file that must be in the repository for the space to run."""
    return "Dockerfile" if config.sdk == "docker" else config.app_file
