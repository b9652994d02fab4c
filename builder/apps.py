from django.apps import AppConfig


class BuilderConfig(AppConfig):
    """The builder has no models; it is an app for its management commands (export_build,
    import_build), which belong beside the image code they call."""

    name = "builder"
    label = "builder"
