from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from spacedock.gitserver.repo import DEFAULT_BRANCH
from spacedock.spaces.stages import STAGE_WORDS

register = template.Library()


@register.simple_tag
def default_branch() -> str:
    """The branch that builds, for the push instructions on the pages."""
    return DEFAULT_BRANCH


@register.filter
def ago(moment: datetime | None) -> str:
    """'3 days ago', 'just now': the largest unit only, as a card has room for."""
    if moment is None:
        return ""
    if (timezone.now() - moment).total_seconds() < 60:
        return "just now"
    return f"{timesince(moment, depth=1)} ago"


@register.filter
def stage_words(space) -> str:
    """A space's stage as the pages say it; a space nothing was pushed to yet is 'Empty', not an error."""
    if not getattr(space, "head_sha", "") and space.stage == "NO_APP_FILE":
        return "Empty"
    if space.stage == "SLEEPING" and sleep_tier(space) == "frozen":
        return "Sleeping (frozen: wakes at once)"
    return STAGE_WORDS.get(space.stage, space.stage)


def sleep_tier(space) -> str:
    """How a sleeping space sleeps: the runner writes it on its Runtime row, read through the
    space's `runtime` relation (no import of the runner). A deployment, or a space the runner has
    not seen yet, has none."""
    runtime = getattr(space, "runtime", None)  # a missing row raises an AttributeError subclass
    return getattr(runtime, "sleep_tier", "")


@register.filter
def stage_class(space) -> str:
    """The badge's colour class: the stage, except for an empty space, which is neutral."""
    return "EMPTY" if not getattr(space, "head_sha", "") and space.stage == "NO_APP_FILE" else space.stage


@register.simple_tag
def stage_words_map() -> dict[str, str]:
    return STAGE_WORDS


@register.filter
def first_line(text: str) -> str:
    return (text or "").strip().split("\n", 1)[0][:300]
