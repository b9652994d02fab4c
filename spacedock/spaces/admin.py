from django.contrib import admin

from spacedock.spaces.models import Build, Space


@admin.register(Space)
class SpaceAdmin(admin.ModelAdmin):
    """Per-space limits (memory, CPU, processes) and desired state are edited here; what the runner
    writes (container, port, stage) is shown, not edited."""

    list_display = ("__str__", "owner", "stage", "visibility", "sleep_time", "memory_limit_mb", "cpu_limit")
    list_filter = ("stage", "visibility", "sdk")
    search_fields = ("name", "owner__username", "subdomain")
    raw_id_fields = ("owner", "deployed_build")
    readonly_fields = ("stage", "stage_message", "container_id", "port", "running_image", "last_request_at")
    fields = (
        "owner", "name", "subdomain", "visibility", "paused", "sleep_time",
        "memory_limit_mb", "cpu_limit", "pids_limit", "deployed_build", *readonly_fields,
    )  # fmt: skip


@admin.register(Build)
class BuildAdmin(admin.ModelAdmin):
    list_display = ("pk", "space", "state", "commit_sha", "pinned", "created")
    list_filter = ("state", "pinned")
    search_fields = ("space__name", "space__owner__username", "commit_sha")
    raw_id_fields = ("space",)
    readonly_fields = ("state", "error", "image", "started", "finished", "heartbeat")
