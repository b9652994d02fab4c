from django.urls import path

from spacedock.accounts import views

urlpatterns = [
    path("signup", views.signup, name="signup"),
    path("login", views.signin, name="login"),
    path("login/set/<str:uid>/<str:token>", views.set_password, name="set_password"),
    path("logout", views.signout, name="logout"),
    path("settings/tokens", views.tokens, name="tokens"),
    path("settings/tokens/new", views.create_token, name="create_token"),
    path("settings/tokens/<int:pk>/revoke", views.revoke_token, name="revoke_token"),
]
