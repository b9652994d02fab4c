from django.urls import path

from spacedock.accounts import views, views_orgs

urlpatterns = [
    path("signup", views.signup, name="signup"),
    path("login", views.signin, name="login"),
    path("login/set/<str:uid>/<str:token>", views.set_password, name="set_password"),
    path("logout", views.signout, name="logout"),
    path("settings/tokens", views.tokens, name="tokens"),
    path("settings/tokens/new", views.create_token, name="create_token"),
    path("settings/tokens/<int:pk>/revoke", views.revoke_token, name="revoke_token"),
    path("organizations/new", views_orgs.new_org, name="new_org"),
    path("organizations/<str:org>/members", views_orgs.set_member, name="org_set_member"),
    path(
        "organizations/<str:org>/members/<str:username>/remove",
        views_orgs.remove_member,
        name="org_remove_member",
    ),
]
