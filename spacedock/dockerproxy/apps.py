from django.apps import AppConfig


class DockerProxyConfig(AppConfig):
    name = "spacedock.dockerproxy"
    label = "dockerproxy"
