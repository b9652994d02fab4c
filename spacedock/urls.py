from django.contrib import admin
from django.urls import include, path, re_path

from spacedock.accounts import views_oauth
from spacedock.api import views_files
from spacedock.buckets.urls import api_urlpatterns as bucket_api
from spacedock.buckets.urls import file_urlpatterns as bucket_files
from spacedock.gitserver import views_lfs
from spacedock.gitserver.views import smart_http

urlpatterns = [
    path("", include("spacedock.proxy.urls")),
    path("", include("spacedock.health.urls")),
    path("api/buckets/", include(bucket_api)),
    path("buckets/", include(bucket_files)),
    path("api/", include("spacedock.api.urls")),
    path("admin/", admin.site.urls),
    # "Sign in with Spacedock" for apps (hf_oauth): the OpenID provider Gradio's LoginButton uses.
    path(".well-known/openid-configuration", views_oauth.discovery),
    path("oauth/authorize", views_oauth.authorize, name="oauth_authorize"),
    path("oauth/token", views_oauth.token),
    path("oauth/userinfo", views_oauth.userinfo),
    path("oauth/jwks", views_oauth.jwks),
    re_path(
        r"^spaces/(?P<owner>[^/]+)/(?P<name>[^/]+)/(?P<action>info/refs|git-upload-pack|git-receive-pack)$",
        smart_http,
    ),
    re_path(r"^spaces/(?P<owner>[^/]+)/(?P<name>[^/]+)/info/lfs/objects/batch$", views_lfs.batch),
    re_path(
        r"^spaces/(?P<owner>[^/]+)/(?P<name>[^/]+)/info/lfs/objects/(?P<oid>[0-9a-f]{64})$",
        views_lfs.transfer,
    ),
    re_path(r"^spaces/(?P<owner>[^/]+)/(?P<name>[^/]+)/info/lfs/verify$", views_lfs.verify),
    re_path(
        r"^spaces/(?P<owner>[^/]+)/(?P<name>[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$", views_files.resolve
    ),
    path("", include("spacedock.accounts.urls")),
    path("", include("spacedock.spaces.urls")),
]
