from django.apps import AppConfig


class SpacesConfig(AppConfig):
    name = "spacedock.spaces"
    label = "spaces"
