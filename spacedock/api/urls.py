from django.urls import path, re_path

from spacedock.api import views

urlpatterns = [
    path("spaces/<str:owner>/<str:name>", views.space_info),
    path("spaces/<str:owner>/<str:name>/runtime", views.space_runtime),
    re_path(r"^spaces/(?P<owner>[^/]+)/(?P<name>[^/]+)/logs/(?P<kind>build|run)$", views.space_logs),
]
