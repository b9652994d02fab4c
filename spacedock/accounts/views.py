"""Sign up, sign in, profiles and access tokens."""

from django import forms
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm, SetPasswordForm, UserCreationForm
from django.contrib.auth.models import User
from django.contrib.auth.tokens import default_token_generator
from django.db import IntegrityError
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.encoding import force_str
from django.utils.http import url_has_allowed_host_and_scheme, urlsafe_base64_decode, urlsafe_base64_encode
from django.views.decorators.http import require_POST

from spacedock import ratelimits
from spacedock.accounts.models import AccessToken, Role, namespace_role
from spacedock.accounts.names import username_problem
from spacedock.clients import client_ip
from spacedock.spaces.models import valid_name


class SignupForm(UserCreationForm):
    def clean_username(self):
        username = super().clean_username()
        if username is None or "username" in self.errors:  # taken: the form says so already
            return username
        if not valid_name(username) or "." in username:
            raise forms.ValidationError("Use letters, digits, '-' and '_', starting with a letter or digit.")
        if problem := username_problem(username):
            raise forms.ValidationError(problem)
        return username


def safe_next(request, default: str = "/") -> str:
    target = request.POST.get("next") or request.GET.get("next") or default
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return default


def _too_many(request, template: str, context: dict, retry: int):
    response = render(request, template, context, status=429)
    response["Retry-After"] = str(retry)
    return response


def signup(request):
    form = SignupForm(request.POST or None)
    if request.method == "POST" and (retry := ratelimits.hit("signup", f"ip:{client_ip(request)}")):
        form.add_error(None, ratelimits.message("sign-ups", retry))
        return _too_many(request, "accounts/signup.html", {"form": form}, retry)
    if request.method == "POST" and form.is_valid():
        try:
            user = form.save()
        except IntegrityError:  # taken between the check and the insert
            form.add_error("username", "A user with that username already exists.")
            return render(request, "accounts/signup.html", {"form": form})
        login(request, user)
        messages.success(request, f"Welcome, {user.username}. Create a token to push your first space.")
        return redirect("tokens")
    return render(request, "accounts/signup.html", {"form": form})


def signin(request):
    form = AuthenticationForm(request, request.POST or None)
    context = {"form": form, "next": safe_next(request)}
    if request.method == "POST":
        # Failed sign-ins count per address and per username; a locked name or address is told so
        # before its password is even checked.
        callers = (f"ip:{client_ip(request)}", f"name:{request.POST.get('username', '').lower()[:150]}")
        if retry := ratelimits.over("login", *callers):
            form.add_error(None, ratelimits.message("failed sign-ins", retry))
            return _too_many(request, "accounts/login.html", context, retry)
        if form.is_valid():
            login(request, form.get_user())
            return redirect(safe_next(request))
        ratelimits.hit("login", *callers)
    return render(request, "accounts/login.html", context)


def sign_in_path(user: User) -> str:
    """A link that lets the user choose a password, then signs them in (`issue_token` prints it).

    Django's password-reset token: bound to the password hash and the last sign-in, so it works
    once, and for PASSWORD_RESET_TIMEOUT only."""
    uid = urlsafe_base64_encode(str(user.pk).encode())
    return f"/login/set/{uid}/{default_token_generator.make_token(user)}"


def set_password(request, uid: str, token: str):
    try:
        user = User.objects.get(pk=int(force_str(urlsafe_base64_decode(uid))), is_active=True)
    except (ValueError, TypeError, OverflowError, User.DoesNotExist):
        user = None
    if user is None or not default_token_generator.check_token(user, token):
        return render(request, "accounts/set_password.html", {"expired": True}, status=404)
    # A GET only shows the form: link previews and scanners must not use the link up.
    form = SetPasswordForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        login(request, form.save(), backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Password set. You are signed in as {user.username}.")
        return redirect("profile", username=user.username)
    return render(request, "accounts/set_password.html", {"form": form, "who": user.username})


@require_POST
def signout(request):
    logout(request)
    return redirect("/")


def profile(request, username: str):
    """A user's page, or an organization's (its spaces, its members, and for its admins the
    member form). Private spaces show to those who may read them."""
    owner = get_object_or_404(User.objects.select_related("organization"), username=username)
    org = getattr(owner, "organization", None)
    if org is None and not owner.is_active:
        raise Http404(username)
    spaces = owner.spaces.select_related("owner").order_by("-updated")
    role = namespace_role(request.user, owner.pk) if request.user.is_authenticated else None
    if role is None and not request.user.is_staff:
        spaces = spaces.filter(visibility="public")
    context = {"owner": owner, "org": org, "spaces": spaces, "role": role}
    if org is not None:
        context["members"] = org.memberships.select_related("user").order_by("user__username")
        context["roles"] = Role.values
    else:
        context["liked"] = (
            owner.like_set.select_related("space__owner")
            .filter(Q(space__visibility="public") | Q(space__owner__pk=request.user.pk))
            .order_by("-created")[:24]
        )
        context["orgs"] = owner.memberships.select_related("org__account").order_by("org__account__username")
    return render(request, "accounts/profile.html", context)


@login_required
def tokens(request):
    return render(
        request,
        "accounts/tokens.html",
        {
            "tokens": request.user.tokens.filter(revoked__isnull=True),
            "raw": request.session.pop("new_token", None),
        },
    )


@login_required
@require_POST
def create_token(request):
    name = request.POST.get("name", "").strip()[:100]
    scope = request.POST.get("scope", "write")
    if not name or scope not in ("read", "write"):
        messages.error(request, "Give the token a name and pick read or write.")
        return redirect("tokens")
    if retry := ratelimits.hit("tokens", f"ip:{client_ip(request)}", f"user:{request.user.pk}"):
        messages.error(request, ratelimits.message("new tokens", retry))
        response = tokens(request)
        response.status_code, response["Retry-After"] = 429, str(retry)
        return response
    _, raw = AccessToken.issue(request.user, name, scope)
    # Shown once, on the next page, then gone: the session keeps it for one read only.
    request.session["new_token"] = {"name": name, "value": raw}
    return redirect("tokens")


@login_required
@require_POST
def revoke_token(request, pk: int):
    token = request.user.tokens.filter(pk=pk, revoked__isnull=True).first()
    if token is None:
        raise Http404
    token.revoke()
    messages.success(request, f"Token {token.name} revoked: it no longer works for git or the API.")
    return redirect("tokens")
