import os
import warnings

from celery import Celery
from celery.exceptions import SecurityWarning

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spacedock.settings")

# `make up` runs as root, because the build engine and the registry's link need it, so Celery's
# "running the worker with superuser privileges" warning fills every start. The worker takes only
# its own tasks, from its own broker, and never pickles (JSON only), which is what the warning is about.
warnings.filterwarnings("ignore", category=SecurityWarning)

app = Celery("spacedock")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["builder", "spacedock.spaces"])
