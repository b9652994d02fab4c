from django.urls import path, re_path

from spacedock.api import views, views_hub

urlpatterns = [
    # The web engineer's Hub routes.
    path("spaces", views_hub.list_spaces),
    path("spaces/<str:owner>/<str:name>", views.space_info),
    path("spaces/<str:owner>/<str:name>/runtime", views.space_runtime),
    re_path(r"^spaces/(?P<owner>[^/]+)/(?P<name>[^/]+)/logs/(?P<kind>build|run)$", views.space_logs),
    path("spaces/<str:owner>/<str:name>/variables", views_hub.space_variables),
    path("spaces/<str:owner>/<str:name>/secrets", views_hub.space_secrets),
    path("spaces/<str:owner>/<str:name>/duplicate", views_hub.duplicate_space),
    path("spaces/<str:owner>/<str:name>/like", views_hub.like),
    path("spaces/<str:owner>/<str:name>/likers", views_hub.space_likers),
    path("users/<str:username>/likes", views_hub.user_likes),
    path("repos/delete", views_hub.delete_repo),
    path("whoami-v2", views_hub.whoami),
]

from spacedock.api import views_runtime  # noqa: E402

urlpatterns += [
    path("spaces/<str:owner>/<str:name>/restart", views_runtime.restart),
    path("spaces/<str:owner>/<str:name>/pause", views_runtime.pause),
    path("spaces/<str:owner>/<str:name>/sleeptime", views_runtime.sleeptime),
    path("spaces/<str:owner>/<str:name>/rollback", views_runtime.rollback),
]
