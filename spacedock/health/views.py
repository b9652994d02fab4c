"""/healthz for load balancers and compose, /metrics for Prometheus."""

import hmac

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from spacedock.health import checks, metrics

LOOPBACK = ("127.0.0.1", "::1")


@never_cache
@require_GET
def healthz(request):
    healthy, results = checks.run({"database": checks.database, "broker": checks.broker})
    return JsonResponse(
        {"status": "ok" if healthy else "failing", "checks": results}, status=200 if healthy else 503
    )


def _may_read_metrics(request) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), token.encode())
    # Without a token, only a scraper on this machine; anything Caddy forwards carries
    # X-Forwarded-For and comes from loopback too, so that header rules it out.
    return request.META.get("REMOTE_ADDR") in LOOPBACK and "HTTP_X_FORWARDED_FOR" not in request.META


@never_cache
@require_GET
def prometheus(request):
    if not _may_read_metrics(request):
        return HttpResponse(
            "Metrics need SPACEDOCK_METRICS_TOKEN as a bearer token (or a scrape from this machine).\n",
            status=403,
            content_type="text/plain",
        )
    return HttpResponse(metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")


@never_cache
@require_GET
def tls_ask(request):
    """Caddy's on-demand TLS asks here before it requests a certificate for a name.

    200 only for the platform's own domain, an existing space's host, or a pinned build's
    host: nobody can make this server ask a CA for certificates of names it does not serve.
    """
    from spacedock.spaces.models import Build, Space

    domain = request.GET.get("domain", "").strip().lower().rstrip(".")
    allowed = domain == settings.DOMAIN.lower()
    suffix = f".{settings.SPACES_DOMAIN.lower()}"
    if not allowed and domain.endswith(suffix):
        label = domain[: -len(suffix)]
        if label.startswith("pin--") and label[5:].isdigit():
            allowed = Build.objects.filter(pk=int(label[5:]), pinned=True).exists()
        elif label and "." not in label:
            allowed = Space.objects.filter(subdomain=label).exists()
    if allowed:
        return HttpResponse("ok\n", content_type="text/plain")
    return HttpResponse(
        f"{domain or '(no domain)'} is not served here\n", status=404, content_type="text/plain"
    )
