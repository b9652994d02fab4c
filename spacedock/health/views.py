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
    healthy, results = checks.run(
        {"database": checks.database, "broker": checks.broker, "firewall": checks.firewall}
    )
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
