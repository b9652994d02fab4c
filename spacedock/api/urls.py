"""The Hub's space routes (huggingface_hub.HfApi calls them), and Spacedock's runtime controls."""

from django.urls import path, re_path

from spacedock.api import views_logs, views_runtime, views_spaces, views_users, views_variables

space = "spaces/<str:owner>/<str:name>"
urlpatterns = [
    path("spaces", views_spaces.list_spaces),
    path(space, views_spaces.space_info),
    path(f"{space}/duplicate", views_spaces.duplicate_space),
    path("repos/delete", views_spaces.delete_repo),
    path(f"{space}/variables", views_variables.space_variables),
    path(f"{space}/secrets", views_variables.space_secrets),
    path(f"{space}/runtime", views_runtime.space_runtime),
    path(f"{space}/restart", views_runtime.restart),
    path(f"{space}/pause", views_runtime.pause),
    path(f"{space}/sleeptime", views_runtime.sleeptime),
    path(f"{space}/rollback", views_runtime.rollback),
    re_path(r"^spaces/(?P<owner>[^/]+)/(?P<name>[^/]+)/logs/(?P<kind>build|run)$", views_logs.space_logs),
    path(f"{space}/like", views_users.like),
    path(f"{space}/likers", views_users.space_likers),
    path("users/<str:username>/likes", views_users.user_likes),
    path("whoami-v2", views_users.whoami),
]
