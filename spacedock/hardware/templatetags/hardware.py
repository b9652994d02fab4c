"""The settings page's hardware and volumes panel reads a space's through these."""

from django import template
from django.conf import settings

from spacedock.hardware.models import SpaceHardware

register = template.Library()


@register.simple_tag
def space_hardware(space) -> dict:
    row = SpaceHardware.of(space)
    suggested = SpaceHardware.suggested(space)
    return {
        "requested": row.flavour(),
        "current": row.current_for_api(),
        "suggested": suggested if suggested and suggested != row.flavour().name else "",
        "suggested_known": suggested in settings.HARDWARE,
        "flavours": list(settings.HARDWARE.values()),
        "volumes": list(space.volumes.all()),
    }
