import re

from django.urls import path, re_path

from spacedock.proxy import paths, views

urlpatterns = [
    path(paths.AUTH_PATH.lstrip("/"), views.forward_auth),
    re_path(rf"^{re.escape(paths.WAKE_PREFIX.lstrip('/'))}(?P<rest>/.*)?$", views.wake),
    path(paths.TLS_ASK_PATH.lstrip("/"), views.tls_ask, name="tls_ask"),
]
