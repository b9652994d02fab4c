from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "spacedock.accounts"
    label = "accounts"
