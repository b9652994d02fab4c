"""Git's smart HTTP protocol, served by git's own `git http-backend`.

Request and response bodies are streamed through the CGI process, never held in
memory: a push of hundreds of MiB costs a pipe buffer, not its size.
"""

import logging
import os
import subprocess
import threading
from pathlib import Path

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from spacedock import ratelimits
from spacedock.accounts.auth import BadCredentials, principal
from spacedock.accounts.models import QuotaExceeded, creatable_namespace
from spacedock.clients import client_ip
from spacedock.gitserver import buildtoken
from spacedock.gitserver.receive import HookServer
from spacedock.gitserver.repo import DEFAULT_BRANCH
from spacedock.spaces.models import Space, valid_name

log = logging.getLogger(__name__)
CHUNK = 64 * 1024
HOOKS_DIR = Path(__file__).resolve().parent / "hooks"
SERVICES = ("git-upload-pack", "git-receive-pack")


def _text(status: int, message: str, **headers) -> HttpResponse:
    # git shows a text/plain error body to the user as "remote: ..." lines.
    response = HttpResponse(message.rstrip("\n") + "\n", status=status, content_type="text/plain")
    for key, value in headers.items():
        response[key.replace("_", "-")] = value
    return response


def _ask_for_token(message: str) -> HttpResponse:
    return _text(401, message, WWW_Authenticate='Basic realm="Spacedock"')


def _how_to_push(owner: str, name: str) -> str:
    return (
        f"Push with a write token: git push http://<user>:<token>@{settings.DOMAIN}"
        f"{settings.PORT_SUFFIX}/spaces/{owner}/{name} {DEFAULT_BRANCH}\n"
        "Make a token on your account page, or with: ./manage.py issue_token <user>"
    )


def _who_may_push(space: Space) -> str:
    if hasattr(space.owner, "organization"):
        return f"only members of the organization {space.owner.username} with write or admin may."
    return f"it belongs to {space.owner.username}."


@csrf_exempt
def smart_http(request, owner: str, name: str, action: str):
    name = name.removesuffix(".git")
    if not (valid_name(owner) and valid_name(name)):
        return _text(
            400,
            f"'{owner}/{name}' is not a space name. Names use letters, digits, '.', '_' and '-', "
            "start with a letter or digit, are at most 96 characters and contain no '..'.",
        )
    if action == "info/refs":
        service = request.GET.get("service", "")
    else:
        service = action
    if service not in SERVICES:
        return _text(403, "Only git's smart HTTP protocol is served here: use git 2.x.")
    if request.method != ("GET" if action == "info/refs" else "POST"):
        return _text(405, "Method not allowed")
    writing = service == "git-receive-pack"
    if (raw := buildtoken.presented(request)) is not None:
        return _fetch_for_build(request, owner, name, action, writing, raw)

    try:
        who = principal(request)
    except BadCredentials as exc:
        return _ask_for_token(f"Authentication failed: {exc}.\n{_how_to_push(owner, name)}")
    # A push needs a token (git's Basic credentials); a session never pushes.
    token, user = who.token, who.user
    callers = [f"ip:{client_ip(request)}"] + ([f"user:{user.pk}"] if user else [])
    if retry := ratelimits.hit("git", *callers):
        return _text(429, ratelimits.message("git requests", retry), Retry_After=str(retry))

    space = Space.objects.select_related("owner").filter(owner__username=owner, name=name).first()
    hidden = space is None or not space.can_read(user)
    if writing:
        if token is None:
            return _ask_for_token(f"Authentication required to push.\n{_how_to_push(owner, name)}")
        if not token.can_write:
            return _text(403, f"The token '{token.name}' is read-only: pushing needs a write token.")
        if space is None:
            account = creatable_namespace(user, owner)
            if account is None:
                return _text(
                    403,
                    f"{owner}/{name} does not exist, and you ({user.username}) can only create "
                    f"spaces under your own name or an organization where you have write: push to "
                    f"/spaces/{user.username}/{name}",
                )
            try:
                space = Space.create(account, name)
            except QuotaExceeded as exc:
                return _text(exc.status, str(exc))
        elif hidden:
            return _text(404, f"Space {owner}/{name} not found.")
        elif not space.can_write(user):
            return _text(403, f"You ({user.username}) cannot push to {owner}/{name}: {_who_may_push(space)}")
        try:  # a push builds, then runs: both must fit the owner's quotas
            space.check_build_quota()
            space.check_run_quota()
        except QuotaExceeded as exc:
            return _text(exc.status, str(exc))
    elif hidden:
        if token is None:
            # Anonymous callers learn nothing: private and missing look alike, and git
            # gets the 401 it needs to retry with credentials.
            return _ask_for_token(f"Space {owner}/{name} not found, or you need to sign in.")
        return _text(404, f"Space {owner}/{name} not found.")

    return _run_backend(request, space, user.username if user else "", action)


def _fetch_for_build(request, owner: str, name: str, action: str, writing: bool, raw: str):
    """A build worker fetching the commit it builds, with its build's token (buildtoken.py)."""
    if retry := ratelimits.hit("git", f"ip:{client_ip(request)}"):
        return _text(429, ratelimits.message("git requests", retry), Retry_After=str(retry))
    if writing:
        return _text(403, "A build token only fetches: it cannot push.")
    space = Space.objects.select_related("owner").filter(owner__username=owner, name=name).first()
    if space is None or buildtoken.build_for(raw, space) is None:
        return _text(403, buildtoken.REFUSED)
    # A build fetches its own commit by id, which need not be a branch's tip any more.
    return _run_backend(request, space, "", action, {"uploadpack.allowReachableSHA1InWant": "true"})


def push_too_large(size: int = 0) -> str:
    got = f" ({size / 2**20:.0f} MiB)" if size else ""
    return (
        f"This push is too large{got}: pushes are limited to {settings.MAX_PUSH_MB} MiB "
        "(SPACEDOCK_MAX_PUSH_MB). Keep large files out of the repository: download models and data "
        "when the app starts."
    )


def _cgi_environ(
    request, space: Space, remote_user: str, action: str, config: dict[str, str], hooks: HookServer | None
) -> dict:
    config = {
        # Hooks come from the code, not from the repository: a repo cannot bring its own.
        "core.hooksPath": str(HOOKS_DIR),
        # A chunked push has no length to check first: git stops reading the pack past this.
        "receive.maxInputSize": str(settings.MAX_PUSH_MB * 1024 * 1024),
        # Keep every pushed pack as it came. git's default unpacks a push of under 100 objects
        # into loose objects, so a push of a few big files made each later clone and build
        # export compress and delta-search them all again (a clone of 4 x 50 MB: 45 s against
        # 6 s from the kept pack). gc --auto after a push still packs the small packs together.
        "receive.unpackLimit": "1",
        **config,
    }
    env = {
        **os.environ,
        "GIT_PROJECT_ROOT": str(settings.REPOS_DIR),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": f"/{space.owner.username}/{space.name}.git/{action}",
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.META.get("QUERY_STRING", ""),
        "CONTENT_TYPE": request.META.get("CONTENT_TYPE", ""),
        "REMOTE_ADDR": request.META.get("REMOTE_ADDR", ""),
        "REMOTE_USER": remote_user,
        "GIT_CONFIG_COUNT": str(len(config)),
        **(hooks.env() if hooks else {}),
    }
    for number, (key, value) in enumerate(config.items()):
        env[f"GIT_CONFIG_KEY_{number}"], env[f"GIT_CONFIG_VALUE_{number}"] = key, value
    for meta, cgi in (
        ("CONTENT_LENGTH", "CONTENT_LENGTH"),
        ("HTTP_CONTENT_ENCODING", "HTTP_CONTENT_ENCODING"),
        ("HTTP_GIT_PROTOCOL", "GIT_PROTOCOL"),
    ):
        if request.META.get(meta):
            env[cgi] = request.META[meta]
    return env


def _copy_body(request, sink) -> None:
    """Feeds the request body to git; the length is known, or gunicorn ends a chunked one."""
    source = request.META["wsgi.input"]
    remaining = int(request.META.get("CONTENT_LENGTH") or 0) or None
    try:
        while remaining is None or remaining > 0:
            chunk = source.read(CHUNK if remaining is None else min(CHUNK, remaining))
            if not chunk:
                break
            if remaining is not None:
                remaining -= len(chunk)
            sink.write(chunk)
    except (BrokenPipeError, OSError) as exc:
        log.warning("git http-backend stopped reading the request: %s", exc)
    finally:
        try:
            sink.close()
        except OSError:
            pass


def _run_backend(request, space: Space, remote_user: str, action: str, config: dict[str, str] | None = None):
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if action == "git-receive-pack" and length > settings.MAX_PUSH_MB * 1024 * 1024:
        return _text(413, push_too_large(length))
    chunked = not request.META.get("CONTENT_LENGTH")
    if request.method == "POST" and chunked and not request.META.get("wsgi.input_terminated"):
        return _text(411, "This server needs a Content-Length, or a server that ends chunked bodies.")
    # Only a push runs hooks, and they reach this process through the HookServer's socket.
    hooks = HookServer(space.pk) if action == "git-receive-pack" else None
    try:
        proc = subprocess.Popen(
            ["git", "http-backend"],
            env=_cgi_environ(request, space, remote_user, action, config or {}, hooks),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except BaseException:
        if hooks:
            hooks.close()
        raise
    feeder = threading.Thread(target=_copy_body, args=(request, proc.stdin), daemon=True)
    feeder.start()
    errors: list[bytes] = []
    drain = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
    drain.start()

    status, headers = 200, {}
    while line := proc.stdout.readline():
        line = line.rstrip(b"\r\n")
        if not line:
            break
        key, _, value = line.decode("latin-1").partition(":")
        if key.lower() == "status":
            status = int(value.strip().split()[0])
        else:
            headers[key.strip()] = value.strip()

    def body():
        try:
            while chunk := proc.stdout.read1(CHUNK):
                yield chunk
        finally:
            proc.stdout.close()
            feeder.join(timeout=5)
            code = proc.wait()
            drain.join(timeout=5)
            if hooks:
                hooks.close()
            if code or (errors and errors[0].strip()):
                log.warning("git http-backend exited %s: %s", code, b"".join(errors).decode(errors="replace"))

    response = StreamingHttpResponse(body(), status=status)
    for key, value in headers.items():
        response[key] = value
    return response
