from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "spacedock.health"
    label = "health"
