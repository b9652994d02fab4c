"""Bucket routes: the Hub's API under /api/buckets/, and files under /buckets/."""

from django.urls import path

from spacedock.buckets import views

bucket = "<str:namespace>/<str:name>"
api_urlpatterns = [
    path("<str:namespace>", views.list_buckets),
    path(bucket, views.bucket),
    path(f"{bucket}/settings", views.bucket_settings),
    path(f"{bucket}/tree", views.tree),
    path(f"{bucket}/tree/<path:prefix>", views.tree),
    path(f"{bucket}/paths-info", views.paths_info),
    path(f"{bucket}/batch", views.batch),
    path(f"{bucket}/files/<path:path>", views.upload),
    path(f"{bucket}/xet-<str:kind>-token", views.xet_token),
]
file_urlpatterns = [
    path(f"{bucket}/resolve/<path:path>", views.resolve),
]
