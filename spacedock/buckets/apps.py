from django.apps import AppConfig


class BucketsConfig(AppConfig):
    name = "spacedock.buckets"
    label = "buckets"
