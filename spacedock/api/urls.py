"""The Hub's space routes (huggingface_hub.HfApi calls them), and Spacedock's runtime controls."""

from django.urls import path, re_path

from spacedock.api import (
    views_commits,
    views_files,
    views_hardware,
    views_logs,
    views_orgs,
    views_repos,
    views_runtime,
    views_spaces,
    views_users,
    views_variables,
    views_volumes,
)

space = "spaces/<str:owner>/<str:name>"
urlpatterns = [
    path("spaces", views_spaces.list_spaces),
    path(space, views_spaces.space_info),
    path(f"{space}/duplicate", views_spaces.duplicate_space),
    path("repos/delete", views_spaces.delete_repo),
    path("repos/create", views_repos.create_repo),
    path("repos/move", views_repos.move_repo),
    path("validate-yaml", views_repos.validate_yaml),
    path(f"{space}/settings", views_repos.repo_settings),
    path(f"{space}/refs", views_repos.list_refs),
    re_path(r"^spaces/(?P<owner>[^/]+)/(?P<name>[^/]+)/branch/(?P<branch>.+)$", views_repos.branch),
    path(f"{space}/preupload/<path:rev>", views_commits.preupload),
    path(f"{space}/commit/<path:rev>", views_commits.commit),
    path(f"{space}/commits/<path:rev>", views_commits.list_commits),
    path(f"{space}/tree/<str:rev>", views_files.tree),
    path(f"{space}/tree/<str:rev>/<path:path>", views_files.tree),
    path(f"{space}/variables", views_variables.space_variables),
    path(f"{space}/secrets", views_variables.space_secrets),
    path(f"{space}/runtime", views_runtime.space_runtime),
    path(f"{space}/restart", views_runtime.restart),
    path(f"{space}/pause", views_runtime.pause),
    path(f"{space}/sleeptime", views_runtime.sleeptime),
    path(f"{space}/rollback", views_runtime.rollback),
    path(f"{space}/pin", views_runtime.pin),
    path(f"{space}/hardware", views_hardware.request_hardware),
    path(f"{space}/volumes", views_volumes.space_volumes),
    re_path(r"^spaces/(?P<owner>[^/]+)/(?P<name>[^/]+)/logs/(?P<kind>build|run)$", views_logs.space_logs),
    path(f"{space}/like", views_users.like),
    path(f"{space}/likers", views_users.space_likers),
    path("users/<str:username>/likes", views_users.user_likes),
    path("whoami-v2", views_users.whoami),
    path("organizations/<str:org>/overview", views_orgs.overview),
    path("organizations/<str:org>/members", views_orgs.members),
    path("organizations/<str:org>/members/<str:username>", views_orgs.member),
]
