from django.apps import AppConfig


class HardwareConfig(AppConfig):
    name = "spacedock.hardware"
    label = "hardware"
