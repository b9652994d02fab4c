import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spacedock.settings")

app = Celery("spacedock")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["builder", "spacedock.spaces"])
