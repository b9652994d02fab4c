from django.urls import path

from spacedock.health import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.prometheus, name="metrics"),
]
