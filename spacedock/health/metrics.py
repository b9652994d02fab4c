"""Prometheus metrics, computed from the database so that every process's work is counted."""

from datetime import timedelta

from django.db.models import Count, F, Sum

from spacedock.health.models import Counter
from spacedock.spaces.models import LIVE_STAGES, STAGES, Build, Space

BUILD_STATES = ("queued", "building", "succeeded", "failed", "cancelled")
DURATION_BUCKETS = (5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
# Counters that other processes bump with Counter.bump(name).
COUNTERS = {
    "wakes": "Sleeping spaces woken by a visitor.",
}


def _family(out: list[str], name: str, kind: str, help_text: str) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")


def render() -> str:
    out: list[str] = []
    by_state = dict(Build.objects.values_list("state").annotate(n=Count("pk")))
    _family(out, "spacedock_builds", "gauge", "Builds by state.")
    for state in sorted(set(BUILD_STATES) | set(by_state)):
        out.append(f'spacedock_builds{{state="{state}"}} {by_state.get(state, 0)}')

    _family(out, "spacedock_build_duration_seconds", "histogram", "Time from a build's start to its end.")
    for outcome in ("succeeded", "failed"):
        done = Build.objects.filter(state=outcome, started__isnull=False, finished__isnull=False).annotate(
            took=F("finished") - F("started")
        )
        for bound in DURATION_BUCKETS:
            n = done.filter(took__lte=timedelta(seconds=bound)).count()
            out.append(f'spacedock_build_duration_seconds_bucket{{outcome="{outcome}",le="{bound}"}} {n}')
        total = done.count()
        seconds = done.aggregate(s=Sum("took"))["s"] or timedelta(0)
        out.append(f'spacedock_build_duration_seconds_bucket{{outcome="{outcome}",le="+Inf"}} {total}')
        out.append(
            f'spacedock_build_duration_seconds_sum{{outcome="{outcome}"}} {seconds.total_seconds():.3f}'
        )
        out.append(f'spacedock_build_duration_seconds_count{{outcome="{outcome}"}} {total}')

    by_stage = dict(Space.objects.values_list("stage").annotate(n=Count("pk")))
    _family(out, "spacedock_spaces", "gauge", "Spaces by stage.")
    for stage in STAGES:
        out.append(f'spacedock_spaces{{stage="{stage}"}} {by_stage.get(stage, 0)}')
    _family(out, "spacedock_running_spaces", "gauge", "Spaces whose app is serving.")
    out.append(f"spacedock_running_spaces {sum(by_stage.get(s, 0) for s in LIVE_STAGES)}")

    _family(out, "spacedock_space_visits_total", "counter", "Visits to spaces.")
    out.append(f"spacedock_space_visits_total {Space.objects.aggregate(v=Sum('visits'))['v'] or 0}")
    for name, help_text in COUNTERS.items():
        _family(out, f"spacedock_{name}_total", "counter", help_text)
        out.append(f"spacedock_{name}_total {Counter.read(name)}")
    return "\n".join(out) + "\n"
