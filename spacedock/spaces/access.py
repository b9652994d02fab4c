"""Who may read or change a space: one policy for the pages and the API.

- The caller is one principal (accounts.auth.principal): the token when an Authorization
  header is sent, else the session.
- A private space does not exist for anyone but its owner (and staff): Http404, a 404.
- A change needs a principal that may act (a write token, or a session whose request passed
  the CSRF check), else SignInRequired (401) or PermissionDenied (403) saying what to send;
  one who may see the space but does not own it gets a PermissionDenied naming the owner.

Views take the space instead of owner and name through @space_reader or @space_owner. Pages
show Http404 and PermissionDenied as Django's 404 and 403 pages (templates/403.html shows the
message); the API's with_api_errors turns them into the Hub's error shape. git has a protocol
of its own (spacedock.gitserver) and the proxy finds a space by its host (spacedock.proxy);
both ask the same Space.can_read and Space.can_write.
"""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.middleware.csrf import CsrfViewMiddleware

from spacedock.accounts.auth import principal
from spacedock.spaces.models import Space


class SignInRequired(PermissionDenied):
    """Nobody is signed in, and the action needs someone (the API answers 401)."""


def get_space_for_user(user: User | None, owner: str, name: str) -> Space:
    """The space `owner/name` when `user` may see it; else Http404, as for a space that does not exist."""
    space = Space.objects.select_related("owner").filter(owner__username=owner, name=name).first()
    if space is None or not space.can_read(user):
        raise Http404(f"{owner}/{name}")
    return space


def _csrf_passed(request) -> bool:
    # The pages' forms went through CsrfViewMiddleware already (this returns at once); the API's
    # views skip it for token clients, so a session is checked here.
    return CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {}) is None


def acting_user(request) -> User:
    """The principal, when it may change things: a write token, or a session that passed the CSRF check."""
    who = principal(request)
    if who.user is None:
        raise SignInRequired(
            "Authentication required: sign in, or send a write token as 'Authorization: Bearer <token>'"
        )
    if who.token is not None:
        if not who.token.can_write:
            raise PermissionDenied(f"The token {who.token.name!r} has read scope; this needs a write token")
    elif not _csrf_passed(request):
        raise PermissionDenied("CSRF check failed: send the csrftoken cookie's value as X-CSRFToken")
    return who.user


def readable_space(request, owner: str, name: str) -> Space:
    return get_space_for_user(principal(request).user, owner, name)


def owned_space(request, owner: str, name: str) -> Space:
    """The space, when the caller may change it. Who may act is asked first, so the answer to
    someone who may not act says nothing about which spaces exist."""
    user = acting_user(request)
    space = get_space_for_user(user, owner, name)
    if not space.can_write(user):
        raise PermissionDenied(f"You don't have the rights to change {space.full_name}: only its owner does")
    return space


def space_reader(view: Callable) -> Callable:
    """view(request, space, ...) for a URL with owner and name, when the caller may see the space."""

    @wraps(view)
    def wrapper(request, owner: str, name: str, *args, **kwargs):
        return view(request, readable_space(request, owner, name), *args, **kwargs)

    return wrapper


def space_owner(view: Callable) -> Callable:
    """view(request, space, ...) for a URL with owner and name, when the caller may change the space."""

    @wraps(view)
    def wrapper(request, owner: str, name: str, *args, **kwargs):
        return view(request, owned_space(request, owner, name), *args, **kwargs)

    return wrapper
