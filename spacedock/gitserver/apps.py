from django.apps import AppConfig


class GitserverConfig(AppConfig):
    name = "spacedock.gitserver"
    label = "gitserver"
