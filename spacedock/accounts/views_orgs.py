"""Organizations on the pages: create one, and its admins manage members. Its page is the
profile page (/<org>), which lists its spaces and members."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from spacedock.accounts.models import Organization, Role
from spacedock.accounts.names import username_problem
from spacedock.spaces.models import valid_name


def org_name_problem(name: str) -> str:
    """Why `name` cannot be a new organization, or "": organizations share the users' names."""
    if not valid_name(name) or "." in name:
        return "Use letters, digits, '-' and '_', starting with a letter or digit."
    if User.objects.filter(username__iexact=name).exists():
        return f"The name {name!r} is taken."
    return username_problem(name)


@login_required
def new_org(request):
    name = request.POST.get("name", "").strip()
    full_name = request.POST.get("full_name", "").strip()[:200]
    error = ""
    if request.method == "POST":
        if not (error := org_name_problem(name)):
            try:
                with transaction.atomic():
                    Organization.create(name, request.user, full_name)
            except IntegrityError:  # taken between the check and the insert
                error = f"The name {name!r} is taken."
            else:
                messages.success(request, f"Organization {name} created: you are its admin.")
                return redirect("profile", username=name)
    return render(request, "accounts/new_org.html", {"name": name, "full_name": full_name, "error": error})


def _org(name: str) -> Organization:
    return get_object_or_404(Organization.objects.select_related("account"), account__username=name)


@login_required
@require_POST
def set_member(request, org: str):
    found = _org(org)
    try:
        found.set_role(request.user, request.POST.get("username", "").strip(), request.POST.get("role", ""))
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Members updated.")
    return redirect("profile", username=org)


@login_required
@require_POST
def remove_member(request, org: str, username: str):
    found = _org(org)
    try:
        found.remove(request.user, username)
    except ValueError as exc:
        messages.error(request, str(exc))
    return redirect("profile", username=org)


ROLES = Role.values
