from django.apps import AppConfig


class ProxyConfig(AppConfig):
    name = "spacedock.proxy"
    label = "proxy"
