from django.urls import path
from django.views.generic import RedirectView

from spacedock.accounts.views import profile
from spacedock.spaces import views, views_builds, views_settings, views_thumbnails

space = "<str:owner>/<str:name>"
urlpatterns = [
    path("", views.gallery, name="index"),
    path(f"embed/{space}", views.embed, name="embed"),
    path(f"embed/{space}/<str:sha>", views.embed, name="pinned_embed"),
    path("new", views.new_space, name="new_space"),
    path("thumbnails/<int:build_id>.png", views_thumbnails.thumbnail, name="thumbnail"),
    path("<str:username>", profile, name="profile"),
    # The Hub's address of a space, which huggingface_hub hands out.
    path(f"spaces/{space}", RedirectView.as_view(pattern_name="space", permanent=False)),
    path(space, views.space_page, name="space"),
    path(f"{space}/files", views.space_files, name="space_files"),
    path(f"{space}/commits", views.space_commits, name="space_commits"),
    path(f"{space}/files/<path:path>", views.space_files, name="space_file"),
    path(f"{space}/logs", views.space_logs, name="space_logs"),
    path(f"{space}/api", views.space_api, name="space_api"),
    path(f"{space}/embed", views.space_embed_code, name="space_embed"),
    path(f"{space}/like", views.like, name="space_like"),
    path(f"{space}/pin", views_builds.pin, name="space_pin"),
    path(f"{space}/unpin", views_builds.unpin, name="space_unpin"),
    path(f"{space}/rollback", views_builds.rollback, name="space_rollback"),
    path(f"{space}/duplicate", views.duplicate, name="space_duplicate"),
    path(f"{space}/settings", views_settings.settings_page, name="space_settings"),
    path(f"{space}/settings/variable", views_settings.set_variable, name="space_set_variable"),
    path(f"{space}/settings/variable/delete", views_settings.delete_variable, name="space_delete_variable"),
    path(f"{space}/settings/sleep", views_settings.set_sleep_time, name="space_sleep"),
    path(f"{space}/settings/visibility", views_settings.set_visibility, name="space_visibility"),
    path(f"{space}/settings/webhook", views_settings.add_webhook, name="space_add_webhook"),
    path(
        f"{space}/settings/webhook/<int:pk>/delete",
        views_settings.delete_webhook,
        name="space_delete_webhook",
    ),
    path(f"{space}/settings/<str:action>", views_settings.lifecycle, name="space_lifecycle"),
    path(f"{space}/delete", views_settings.delete_space, name="space_delete"),
]
