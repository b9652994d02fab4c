"""Installs one Gradio version into the shared SDK image, with its dependencies as of its release.

Runs inside the SDK image's build, on the base image's Python (standard library only), with uv
from the build's first stage. A Space pinned to an old Gradio must run as it did when it was made,
so nothing published after that Gradio release may enter: the script asks the package index when
gradio==VERSION was uploaded, resolves with uv's --exclude-newer at that moment, keeps the result
as the image's lock (printed to the build log too), and installs exactly that lock. It then keeps
Gradio 6 from starting the Hub's hot-reloader (see disable_spaces_reloader).

usage: python3 install.py VERSION
"""

import base64
import configparser
import datetime
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit, urlunsplit

PIP_CONF = "/etc/pip.conf"  # the build's pip settings, a BuildKit secret when the operator sets an index
DEFAULT_INDEX = "https://pypi.org/simple"
UV = "/opt/uv/bin/uv"
VENV_PYTHON = "/opt/venv/bin/python"
LOCK = "/opt/sdk/requirements.lock"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


class Failure(Exception):
    """What went wrong, in words for the build log."""


def indexes() -> list[str]:
    conf = configparser.ConfigParser()
    conf.read(PIP_CONF)
    index = conf.get("global", "index-url", fallback=DEFAULT_INDEX)
    return [index, *conf.get("global", "extra-index-url", fallback="").split()]


def shown(url: str) -> str:
    """An index URL fit for a log: without its user and password."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.hostname or "")) if parts.username else url


def fetch_json(url: str) -> dict | None:
    parts = urlsplit(url)
    headers = {"Accept": SIMPLE_JSON}
    if parts.username:
        credentials = f"{parts.username}:{parts.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode()
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        url = urlunsplit(parts._replace(netloc=netloc))
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            if not answer.headers.get("Content-Type", "").startswith(SIMPLE_JSON):
                raise Failure(
                    f"The package index at {shown(url)} does not serve the JSON simple API (PEP 691), "
                    "which says when each file was uploaded. Spacedock resolves an SDK image's "
                    "dependencies as of its Gradio release and needs those times: use PyPI or a "
                    "mirror that serves them (SPACEDOCK_PIP_INDEX_URL)."
                )
            return json.load(answer)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise Failure(f"The package index at {shown(url)} answered {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise Failure(f"The package index at {shown(url)} cannot be reached: {exc.reason}") from None


def file_version(filename: str) -> str:
    """gradio-4.44.1-py3-none-any.whl and gradio-4.44.1.tar.gz -> 4.44.1"""
    return filename.removesuffix(".tar.gz").split("-")[1] if filename.count("-") else ""


def same_release(found: str, asked: str) -> bool:
    # As pip compares them: 4.44 is 4.44.0. sdk_version is digits and dots; a pre-release is never it.
    if not found.replace(".", "").isdigit():
        return False
    a, b = ([int(n) for n in v.split(".")] for v in (found, asked))
    width = max(len(a), len(b))
    return a + [0] * (width - len(a)) == b + [0] * (width - len(b))


def release_time(version: str) -> datetime.datetime:
    """When the last file of gradio==version was uploaded, from the first index that has it."""
    for index in indexes():
        page = fetch_json(index.rstrip("/") + "/gradio/")
        files = [
            f for f in (page or {}).get("files", []) if same_release(file_version(f["filename"]), version)
        ]
        if not files:
            continue
        times = [f.get("upload-time") for f in files]
        if None in times:
            raise Failure(
                f"The package index at {shown(index)} does not say when gradio {version} was uploaded "
                "(PEP 700 upload-time). Spacedock resolves an SDK image's dependencies as of its Gradio "
                "release and needs that time: use PyPI or a mirror that serves it."
            )
        return max(datetime.datetime.fromisoformat(t.replace("Z", "+00:00")) for t in times)
    raise Failure(
        f"Gradio {version} is not on the package index ({', '.join(shown(i) for i in indexes())}). "
        "Check sdk_version in README.md: it names a released Gradio, such as 5.9.1."
    )


def uv(*args: str, stdin: str | None = None) -> str:
    index, *extra = indexes()
    command = [UV, "pip", *args, "--python", VENV_PYTHON, "--index-url", index]
    for url in extra:
        command += ["--extra-index-url", url]
    # As pip does: the best version across every index, not the first index that has the name.
    command += ["--index-strategy", "unsafe-best-match"]
    env = {
        **os.environ,
        "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",  # the build's CA bundle, a secret mount
        "UV_CACHE_DIR": "/root/.cache/uv",
        "UV_LINK_MODE": "copy",  # the cache is another mount: no hard links across
        "UV_NO_PROGRESS": "1",
    }
    result = subprocess.run(command, input=stdin, env=env, stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise Failure(f"uv pip {args[0]} failed (exit {result.returncode}); its message is above")
    return result.stdout


def main(version: str) -> None:
    # The moment after the release's last upload: gradio_client and the rest of the release are in.
    cutoff = (release_time(version) + datetime.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # What the Hub installs for a Gradio space: Gradio with its OAuth extra, and `spaces`, the Hub's
    # runtime package, which apps import (`@spaces.GPU` does nothing off ZeroGPU).
    wanted = f"gradio[oauth]=={version}\nspaces\n"
    print(f"==> Resolving gradio[oauth]=={version} and spaces as published before {cutoff}", flush=True)
    pins = uv("compile", "-", "--exclude-newer", cutoff, "--no-header", stdin=wanted)
    uv_version = subprocess.run([UV, "--version"], capture_output=True, text=True).stdout.strip()
    python = subprocess.run([VENV_PYTHON, "--version"], capture_output=True, text=True).stdout.strip()
    lock = (
        f"# The shared SDK image of Gradio {version}: gradio[oauth]=={version} and spaces, with every\n"
        f"# dependency as published before {cutoff} (the release of Gradio {version}).\n"
        f"# Resolved by {uv_version} for {python}; installed as is.\n" + pins
    )
    os.makedirs(os.path.dirname(LOCK), exist_ok=True)
    with open(LOCK, "w") as out:
        out.write(lock)
    print(f"==> The lock, kept in the image at {LOCK}:\n{lock}", flush=True)
    # Exactly the lock: no second resolution. The cutoff still holds for any build dependency.
    # Compiled now, as pip does: the app's user cannot write __pycache__ here, and every start
    # would compile Gradio again.
    uv("install", "--no-deps", "--compile-bytecode", "--exclude-newer", cutoff, "-r", LOCK)
    disable_spaces_reloader()


# Gradio 6's start_server: `if get_space() is not None: reloader = SpacesReloader(...)`.
SPACES_RELOADER = re.compile(r"if get_space\(\) is not None:(?=\s+reloader = SpacesReloader\()")


def disable_spaces_reloader() -> None:
    """Keeps Gradio 6 from starting the Hub's hot-reloader; everything else SYSTEM=spaces does stays.

    Under SYSTEM=spaces, Gradio 6 starts the Hub's dev-mode reloader: without the `spaces` package
    it logs a traceback at every start; with it, it serves an unauthenticated code-reload API on
    port 7887 of every container, which nothing here calls, and its start logs asyncio tracebacks.
    No setting turns it off alone, so the one line that starts it is switched off in this image.
    """
    purelib = subprocess.run(
        [VENV_PYTHON, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    path = os.path.join(purelib, "gradio", "http_server.py")
    with open(path) as source:
        text = source.read()
    if "SpacesReloader(" not in text:
        return  # Gradio 4 and 5 have no such reloader
    patched, count = SPACES_RELOADER.subn("if False:  # Spacedock: no Hub dev mode, no hot-reloader", text)
    if count != 1:
        print(
            "==> Note: this Gradio starts the Hub's hot-reloader in a way Spacedock does not know; its apps "
            "may log a traceback about the `spaces` package at start",
            flush=True,
        )
        return
    with open(path, "w") as out:
        out.write(patched)
    subprocess.run([VENV_PYTHON, "-m", "compileall", "-q", path], check=True)
    print(f"==> Gradio's Spaces hot-reloader is off ({path})", flush=True)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Failure as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
