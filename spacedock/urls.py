from django.urls import include, path, re_path

from spacedock.gitserver.views import smart_http
from spacedock.spaces import views as spaces

urlpatterns = [
    path("", spaces.index, name="index"),
    path("api/", include("spacedock.api.urls")),
    re_path(
        r"^spaces/(?P<owner>[^/]+)/(?P<name>[^/]+)/(?P<action>info/refs|git-upload-pack|git-receive-pack)$",
        smart_http,
    ),
    path("<str:owner>/<str:name>", spaces.space_page, name="space"),
]

urlpatterns.insert(0, path("", include("runner.urls")))
