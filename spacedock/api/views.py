"""The JSON API, shaped like the Hugging Face Hub's space routes."""

import json
import time
from datetime import UTC

from django.http import Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404

from spacedock.accounts.auth import BadCredentials, token_from_request
from spacedock.gitserver import repo as gitrepo
from spacedock.spaces.models import Build, Space, trending_points

LOG_POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 15


def hub_time(moment) -> str | None:
    """The Hub's timestamps, which huggingface_hub parses with '%Y-%m-%dT%H:%M:%S.%fZ'."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def api_error(status: int, message: str, code: str = "") -> JsonResponse:
    # huggingface_hub picks its exception from these headers.
    response = JsonResponse({"error": message}, status=status)
    response["X-Error-Message"] = message
    if code:
        response["X-Error-Code"] = code
    return response


class ApiError(Exception):
    """An answer in the Hub's error shape, raised from anywhere in a view."""

    def __init__(self, status: int, message: str, code: str = ""):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def api_user(request):
    """The caller: a signed-in browser session, or an API token."""
    if request.user.is_authenticated:
        return request.user
    token = token_from_request(request)
    return token.user if token else None


def readable_space(request, owner: str, name: str) -> Space:
    space = get_object_or_404(Space.objects.select_related("owner"), owner__username=owner, name=name)
    if not space.can_read(api_user(request)):
        raise Http404
    return space


def runtime_json(space: Space) -> dict:
    return {
        "stage": space.stage,
        "errorMessage": space.stage_message or None,
        "hardware": {"current": "cpu-basic" if space.container_id else None, "requested": "cpu-basic"},
        "storage": None,
        "gcTimeout": space.sleep_time if space.sleep_time >= 0 else None,
        "replicas": {"current": 1 if space.container_id else 0, "requested": 1},
        "domains": [{"domain": space.host, "stage": "READY"}],
        "devMode": False,
    }


def build_json(build: Build | None) -> dict | None:
    if build is None:
        return None
    return {
        "id": build.pk,
        "commit": build.commit_sha,
        "state": build.state,
        "image": build.image or None,
        "error": build.error or None,
        "created": hub_time(build.created),
        "started": hub_time(build.started),
        "finished": hub_time(build.finished),
    }


def trending_now(space: Space) -> int:
    # The stored score grows with time; divided by today's factor it reads as recent events.
    return round(space.trending_score / trending_points(1.0))


def space_json(space: Space, with_build: bool = True) -> dict:
    card = {
        "title": space.title,
        "emoji": space.emoji,
        "colorFrom": space.color_from,
        "colorTo": space.color_to,
        "sdk": space.sdk or None,
        "sdk_version": space.sdk_version or None,
        "python_version": space.python_version or None,
        "app_file": space.app_file or None,
        "app_port": space.app_port,
        "short_description": space.short_description or None,
        "pinned": space.pinned,
        "license": space.license or None,
        "tags": space.tags,
        "models": space.linked_models,
        "datasets": space.linked_datasets,
        "disable_embedding": space.disable_embedding,
    }
    return {
        "_id": str(space.pk),
        "id": space.full_name,
        "author": space.owner.username,
        "sha": space.head_sha or None,
        "lastModified": hub_time(space.updated),
        "createdAt": hub_time(space.created),
        "private": space.is_private,
        "disabled": False,
        "likes": space.likes,
        "trendingScore": trending_now(space),
        "sdk": space.sdk or None,
        "tags": space.tags,
        "models": space.linked_models,
        "datasets": space.linked_datasets,
        "cardData": card,
        "subdomain": space.subdomain,
        "host": space.url,
        "runtime": runtime_json(space),
        "build": build_json(space.builds.first()) if with_build else None,
    }


def with_api_errors(view):
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except BadCredentials:
            # This exact message makes huggingface_hub say "bad token", not "repo not found".
            return api_error(401, "Invalid credentials in Authorization header")
        except Http404:
            return api_error(404, "Repository not found", code="RepoNotFound")
        except ApiError as exc:
            return api_error(exc.status, exc.message, exc.code)

    wrapper.__name__ = view.__name__
    return wrapper


@with_api_errors
def space_info(request, owner: str, name: str):
    space = readable_space(request, owner, name)
    info = space_json(space)
    info["siblings"] = [{"rfilename": path} for path in gitrepo.list_files(space.repo_path, space.head_sha)]
    return JsonResponse(info)


@with_api_errors
def space_runtime(request, owner: str, name: str):
    return JsonResponse(runtime_json(readable_space(request, owner, name)))


def _sse(lines, follow) -> StreamingHttpResponse:
    """Log lines as the Hub sends them: `data: {"data": ..., "timestamp": ...}` events."""

    def events():
        offset, quiet = 0, 0.0
        while True:
            batch = list(lines(offset))
            for line in batch:
                payload = {"data": line.text + "\n", "timestamp": hub_time(line.time)}
                yield f"data: {json.dumps(payload)}\n\n"
                offset = line.number + 1
            if batch:
                quiet = 0.0
                continue
            if not follow():
                return
            time.sleep(LOG_POLL_SECONDS)
            quiet += LOG_POLL_SECONDS
            if quiet >= HEARTBEAT_SECONDS:
                quiet = 0.0
                yield ": heartbeat\n\n"

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


@with_api_errors
def space_logs(request, owner: str, name: str, kind: str):
    space = readable_space(request, owner, name)
    if kind == "build":
        build_id = request.GET.get("build")
        builds = space.builds.all()
        build = builds.filter(pk=build_id).first() if build_id else builds.first()
        if build is None:
            return _sse(lambda offset: [], lambda: False)

        def still_building() -> bool:
            build.refresh_from_db(fields=["state"])
            return build.state in Build.ACTIVE

        return _sse(lambda offset: build.log_lines(offset)[:500], still_building)
    space_id = space.pk

    def running() -> bool:
        return Space.objects.filter(pk=space_id, container_id__gt="").exists()

    return _sse(lambda offset: space.run_lines.filter(number__gte=offset).order_by("number")[:500], running)
