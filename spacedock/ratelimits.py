"""Rate limits: how often one address or one user may sign in, sign up, make tokens, call the
API or use git. Counters live in Django's cache (Redis with REDIS_URL, else files in the data
folder), so every web process counts against the same numbers.

Each limit is a fixed window: at most `count` hits per `seconds`, counted from the window's start.
"""

import hashlib
import time

from django.conf import settings
from django.core.cache import cache

from spacedock.accounts.auth import BadCredentials, principal
from spacedock.api.protocol import api_error
from spacedock.clients import client_ip


def _key(action: str, who: str, window: int) -> str:
    # Hashed: a username or an address may hold characters a cache key cannot.
    return f"rate:{action}:{hashlib.sha256(who.encode()).hexdigest()[:32]}:{window}"


def _window(action: str) -> tuple[int, int, int]:
    count, seconds = settings.RATE_LIMITS[action]
    now = int(time.time())
    return count, seconds, now - now % seconds


def over(action: str, *whos: str) -> int:
    """Seconds until any of `whos` may `action` again, without counting a hit; 0 when it may now."""
    count, seconds, start = _window(action)
    if count <= 0:
        return 0
    for who in whos:
        if (cache.get(_key(action, who, start)) or 0) >= count:
            return max(start + seconds - int(time.time()), 1)
    return 0


def hit(action: str, *whos: str) -> int:
    """Counts one `action` for each of `whos`; seconds until it may happen again when one of them
    is past its limit, else 0."""
    count, seconds, start = _window(action)
    if count <= 0:
        return 0
    worst = 0
    for who in whos:
        key = _key(action, who, start)
        cache.add(key, 0, timeout=seconds + 5)
        try:
            n = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=seconds + 5)
            n = 1
        if n > count:
            worst = max(worst, start + seconds - int(time.time()), 1)
    return worst


def message(what: str, retry_after: int) -> str:
    minutes = (retry_after + 59) // 60
    when = f"{retry_after} seconds" if retry_after < 120 else f"{minutes} minutes"
    return f"Too many {what} from your address or account; try again in {when}."


def limit_api(get_response):
    """Middleware: every `/api/` request counts against its address and, once its token or session
    names one, its user."""

    def middleware(request):
        if not request.path.startswith("/api/"):
            return get_response(request)
        whos = [f"ip:{client_ip(request)}"]
        try:
            user = principal(request).user
        except BadCredentials:
            user = None  # the view answers 401; a wrong token never spends someone's budget
        if user is not None:
            whos.append(f"user:{user.pk}")
        if retry := hit("api", *whos):
            return api_error(429, message("API requests", retry), retry_after=retry)
        return get_response(request)

    return middleware
