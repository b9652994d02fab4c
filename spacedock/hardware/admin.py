from django.contrib import admin

from spacedock.hardware.models import GpuAssignment, SpaceHardware


@admin.register(SpaceHardware)
class SpaceHardwareAdmin(admin.ModelAdmin):
    """An administrator may move a space to any flavour here (no quota applies); the runner writes current."""

    list_display = ("space", "requested", "current", "updated")
    search_fields = ("space__name", "space__owner__username")
    raw_id_fields = ("space",)
    readonly_fields = ("current",)


@admin.register(GpuAssignment)
class GpuAssignmentAdmin(admin.ModelAdmin):
    """Which space holds which GPU; deleting a row frees the GPU (the runner's release does the same)."""

    list_display = ("gpu", "space", "shared", "created")
    raw_id_fields = ("space",)
