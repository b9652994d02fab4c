from django.contrib import admin

from spacedock.buckets.models import Bucket, SpaceVolume


@admin.register(Bucket)
class BucketAdmin(admin.ModelAdmin):
    """max_size_mb raises or lowers one bucket's size quota (empty: SPACEDOCK_BUCKET_MAX_MB)."""

    list_display = ("__str__", "owner", "visibility", "max_size_mb", "created")
    search_fields = ("name", "owner__username")
    raw_id_fields = ("owner",)


@admin.register(SpaceVolume)
class SpaceVolumeAdmin(admin.ModelAdmin):
    list_display = ("space", "type", "source", "mount_path", "read_only")
    raw_id_fields = ("space", "bucket", "source_space")
