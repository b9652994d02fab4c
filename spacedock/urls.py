from django.urls import include, path, re_path

from spacedock.gitserver.views import smart_http

urlpatterns = [
    path("", include("spacedock.proxy.urls")),
    path("", include("spacedock.health.urls")),
    path("api/", include("spacedock.api.urls")),
    re_path(
        r"^spaces/(?P<owner>[^/]+)/(?P<name>[^/]+)/(?P<action>info/refs|git-upload-pack|git-receive-pack)$",
        smart_http,
    ),
    path("", include("spacedock.accounts.urls")),
    path("", include("spacedock.spaces.urls")),
]
