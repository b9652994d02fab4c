"""The warm pool's agent: the program an idle pool container runs (runner/pool.py).

It is no module of the platform: the pool passes this file's text to the SDK image's Python as
`python -c <text>`, in the SDK image's working folder, as the spaces' unprivileged user, with
the pool's environment. It imports Gradio (most of a fresh container's start), prints READY,
and waits for SIGUSR1 with no timer. To adopt it the runner puts the space's app files into the
app folder and the space's whole environment into ADOPT (put_archive, owned by this user, mode
0600: never in the container's config, a command line or the log), then sends SIGUSR1. The agent
then makes the process look as `python <app_file>` started fresh in the space's own container
would: the environment, the working folder, sys.argv, sys.path[0], a new __main__ module with
the file's code; and runs the app in this process, which serves that space until it ends.

What was read from the environment while Gradio was imported is recorded: a space whose
environment differs in one of those variables (or in one the interpreter and C libraries read at
start, STARTUP) could see the pool's value cached in a module, so the agent replaces itself with
a fresh `python <app_file>` (exec, same container) instead: slower, never wrong. A container that
Docker restarts after its app crashed finds ADOPT and does the same.
"""

import builtins
import importlib.machinery
import json
import os
import signal
import sys
import types

FOLDER = "/tmp/spacedock-pool"
ADOPT = FOLDER + "/adopt.json"
READY = "spacedock-pool: ready"
# Read by the interpreter at its start or by C libraries as they load, never through os.environ:
# a space that sets one of them gets a fresh interpreter.
STARTUP = ("PYTHON", "LC_", "LANG", "LD_", "PATH", "OMP_", "OPENBLAS_", "MKL_", "MALLOC_", "TZ", "SSL_")
# Docker sets these itself in every container; a space's own environment does not name them.
DOCKER_SETS = ("HOSTNAME", "HOME")
# Modules that walk the whole environment while Gradio is imported, and the variables they keep:
# a walker not named here could keep any of them.
WALKERS = {
    "fsspec.config": lambda key: key.startswith("FSSPEC_"),
    "tqdm.utils": lambda key: key.startswith("TQDM_"),
    "urllib.request": lambda key: key.lower().endswith("_proxy") or key == "REQUEST_METHOD",
}
# Who read what while Gradio was imported: variable -> {(module, read by its top-level code)}.
# (A walker's own reads are its predicate's.)
reads: dict[str, set[tuple[str, bool]]] = {}
walkers: set[str] = set()
MISSING = object()
# Modules between a reader and os.environ (the latter is _collections_abc's __name__).
SKIPPED = ("os", "_collections_abc", "collections.abc")


def _reader():
    """The frame that asked os.environ, past os and collections.abc."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__") in SKIPPED:
        frame = frame.f_back
    return frame


def warm() -> None:
    """Imports Gradio, recording every read of os.environ meanwhile."""
    environ = type(os.environ)
    getitem, walk = environ.__getitem__, environ.__iter__

    def recording_getitem(self, key):
        frame = _reader()
        module = frame.f_globals.get("__name__", "") if frame is not None else ""
        if module not in WALKERS:
            top = frame is not None and frame.f_code.co_name == "<module>"
            reads.setdefault(key, set()).add((module, top))
        return getitem(self, key)

    def recording_iter(self):
        frame = _reader()
        walkers.add(frame.f_globals.get("__name__", "") if frame is not None else "")
        return walk(self)

    environ.__getitem__, environ.__iter__ = recording_getitem, recording_iter
    try:
        import gradio  # noqa: F401
    finally:
        environ.__getitem__, environ.__iter__ = getitem, walk


def stale(changed: set[str]) -> tuple[list[tuple[str, str]], str]:
    """What to set again for the space's environment to look as read afresh: the module globals that
    hold a variable exactly as read at import, under its own name (`OAUTH_CLIENT_ID =
    os.environ.get("OAUTH_CLIENT_ID")` in huggingface_hub.constants and gradio.oauth). The second
    value, when not "", names a variable whose effect cannot be set again: start afresh."""
    rebind = []
    for key in sorted(changed):
        if key.startswith(STARTUP):
            return [], key
        for walker in walkers:
            if walker not in WALKERS or WALKERS[walker](key):
                return [], key
        for module, top in reads.get(key, ()):
            before = os.environ.get(key)
            held = getattr(sys.modules.get(module), key, MISSING)
            if not top or held is MISSING or held != before:
                return [], key
            rebind.append((module, key))
    return rebind, ""


def wait() -> dict:
    while True:
        signal.sigwait({signal.SIGUSR1})
        if os.path.exists(ADOPT):  # anything else is a stray signal
            with open(ADOPT) as f:
                return json.load(f)


def unblock() -> None:
    """SIGUSR1 as a fresh process has it (an exec keeps the mask): a second signal still pending
    would kill the app once unblocked, so it is taken first."""
    while signal.SIGUSR1 in signal.sigpending():
        signal.sigwait({signal.SIGUSR1})
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})


def fresh(payload: dict, env: dict) -> None:
    os.chdir(payload["workdir"])
    unblock()
    os.execvpe(payload["argv"][0], payload["argv"], env)


def run(payload: dict, env: dict, rebind: list[tuple[str, str]]) -> None:
    """`python <app_file>` in this interpreter."""
    os.chdir(payload["workdir"])
    os.environ.clear()
    os.environ.update(env)
    for module, key in rebind:
        setattr(sys.modules[module], key, env.get(key))
    path = os.path.abspath(payload["argv"][1])
    sys.argv = payload["argv"][1:]
    sys.path[0] = os.path.dirname(path)  # `python -c` put the working folder there as ""
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__cached__ = None
    main.__builtins__ = builtins
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", path)
    sys.modules["__main__"] = main
    with open(path, "rb") as f:
        code = compile(f.read(), path, "exec")
    unblock()
    exec(code, main.__dict__)


def agent() -> None:
    # Until this line SIGUSR1 would kill the interpreter; the pool signals only an agent that said
    # READY, which comes after.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    os.makedirs(FOLDER, mode=0o700, exist_ok=True)
    if os.path.exists(ADOPT):  # restarted by Docker after the adopted app exited
        with open(ADOPT) as f:
            payload = json.load(f)
        fresh(payload, {**{k: os.environ[k] for k in DOCKER_SETS if k in os.environ}, **payload["env"]})
    warm()
    print(READY, flush=True)
    payload = wait()
    env = {**{k: os.environ[k] for k in DOCKER_SETS if k in os.environ}, **payload["env"]}
    changed = {k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k)}
    rebind, reason = stale(changed)
    if reason:
        # A name only, never a value: this line is in the space's run log.
        print(f"spacedock-pool: starting afresh, {reason} was read when Gradio was imported", flush=True)
        fresh(payload, env)
    run(payload, env, rebind)


if __name__ == "__main__":
    agent()
