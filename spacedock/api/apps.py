from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "spacedock.api"
    label = "api"
