from django.urls import path, re_path

from spacedock.proxy import views

urlpatterns = [
    path("_runner/auth", views.forward_auth),
    path("_runner/spaces/<str:owner>/<str:name>/rollback", views.rollback_form),
    re_path(r"^_runner/wake(?P<rest>/.*)?$", views.wake),
]
