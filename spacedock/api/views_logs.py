"""Build and run logs as the Hub streams them: server-sent events, live while there is more to come."""

import json
import time

from django.conf import settings
from django.http import StreamingHttpResponse

from spacedock.api.protocol import ApiError, row_id, with_api_errors
from spacedock.api.serializers import hub_time
from spacedock.api.streams import SlotStream, StreamsExhausted, take_stream_slot
from spacedock.clients import client_ip
from spacedock.spaces.access import space_reader
from spacedock.spaces.models import Build, Space

LOG_POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 15


def _sse(request, lines, follow) -> StreamingHttpResponse:
    """Log lines as the Hub sends them: `data: {"data": ..., "timestamp": ...}` events."""
    try:
        release = take_stream_slot(client_ip(request))
    except StreamsExhausted as exc:
        raise ApiError(429, exc.message, retry_after=5) from None

    def events():
        offset, quiet = 0, 0.0
        ends_at = time.monotonic() + settings.STREAM_MAX_SECONDS
        while True:
            batch = list(lines(offset))
            for line in batch:
                payload = {"data": line.text + "\n", "timestamp": hub_time(line.time)}
                yield f"data: {json.dumps(payload)}\n\n"
                offset = line.number + 1
            if batch:
                quiet = 0.0
                continue
            if not follow() or time.monotonic() >= ends_at:
                return
            if offset == 0 and quiet == 0:  # nothing yet: send the headers now, not at the heartbeat
                yield ": waiting for log lines\n\n"
            time.sleep(LOG_POLL_SECONDS)
            quiet += LOG_POLL_SECONDS
            if quiet >= HEARTBEAT_SECONDS:
                quiet = 0.0
                yield ": heartbeat\n\n"

    response = StreamingHttpResponse(SlotStream(events(), release), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def _build_id(request) -> int | None:
    value = request.GET.get("build")
    if not value:
        return None
    if (build_id := row_id(value)) is None:
        raise ApiError(400, "'build' must be a build number, e.g. ?build=12")
    return build_id


@with_api_errors
@space_reader
def space_logs(request, space: Space, kind: str):
    if kind == "build":
        build_id = _build_id(request)
        builds = space.builds.all()
        build = builds.filter(pk=build_id).first() if build_id else space.own_builds().first()
        if build is None:
            return _sse(request, lambda offset: [], lambda: False)

        def still_building() -> bool:
            build.refresh_from_db(fields=["state"])
            return build.state in Build.ACTIVE

        return _sse(request, lambda offset: build.log_lines(offset)[:500], still_building)
    space_id = space.pk

    def running() -> bool:
        return Space.objects.filter(pk=space_id, container_id__gt="").exists()

    return _sse(
        request,
        lambda offset: space.run_lines.filter(number__gte=offset).order_by("number")[:500],
        running,
    )
