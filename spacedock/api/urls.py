from django.urls import path, re_path

from spacedock.api import views

urlpatterns = [
    path("spaces/<str:owner>/<str:name>", views.space_info),
    path("spaces/<str:owner>/<str:name>/runtime", views.space_runtime),
    re_path(r"^spaces/(?P<owner>[^/]+)/(?P<name>[^/]+)/logs/(?P<kind>build|run)$", views.space_logs),
]

from spacedock.api import runtime_views  # noqa: E402

urlpatterns += [
    path("spaces/<str:owner>/<str:name>/restart", runtime_views.restart),
    path("spaces/<str:owner>/<str:name>/pause", runtime_views.pause),
    path("spaces/<str:owner>/<str:name>/sleeptime", runtime_views.sleeptime),
    path("spaces/<str:owner>/<str:name>/rollback", runtime_views.rollback),
]
