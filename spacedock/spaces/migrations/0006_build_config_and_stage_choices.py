from django.db import migrations, models


def fill_build_config(apps, schema_editor):
    # Builds from before a build carried its config get the one their space shows now: the
    # best guess there is (the config of the head), and what such builds were run with until now.
    Build = apps.get_model("spaces", "Build")
    Space = apps.get_model("spaces", "Space")
    for space in Space.objects.filter(pk__in=Build.objects.filter(config={}).values("space_id")):
        config = {
            "title": space.title,
            "emoji": space.emoji,
            "colorFrom": space.color_from,
            "colorTo": space.color_to,
            "sdk": space.sdk or "gradio",
            "sdk_version": space.sdk_version,
            "python_version": space.python_version,
            "app_file": space.app_file,
            "app_port": space.app_port,
            "short_description": space.short_description,
            "tags": space.tags,
            "pinned": space.pinned,
            "license": space.license,
            "startup_duration_timeout": space.startup_duration_timeout,
            "disable_embedding": space.disable_embedding,
            "models": space.linked_models,
            "datasets": space.linked_datasets,
        }
        Build.objects.filter(space=space, config={}).update(config=config)


class Migration(migrations.Migration):
    dependencies = [("spaces", "0005_variable_key_is_env_name")]

    operations = [
        migrations.AddField(
            model_name="build",
            name="config",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.RunPython(fill_build_config, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="build",
            name="state",
            field=models.CharField(
                choices=[
                    ("queued", "Queued"),
                    ("building", "Building"),
                    ("succeeded", "Succeeded"),
                    ("failed", "Failed"),
                    ("cancelled", "Cancelled"),
                ],
                default="queued",
                max_length=12,
            ),
        ),
        migrations.AlterField(
            model_name="space",
            name="stage",
            field=models.CharField(
                choices=[
                    ("NO_APP_FILE", "No App File"),
                    ("CONFIG_ERROR", "Config Error"),
                    ("BUILDING", "Building"),
                    ("BUILD_ERROR", "Build Error"),
                    ("APP_STARTING", "App Starting"),
                    ("RUNNING", "Running"),
                    ("RUNNING_BUILDING", "Running Building"),
                    ("RUNNING_APP_STARTING", "Running App Starting"),
                    ("RUNTIME_ERROR", "Runtime Error"),
                    ("SLEEPING", "Sleeping"),
                    ("PAUSED", "Paused"),
                    ("STOPPED", "Stopped"),
                ],
                default="NO_APP_FILE",
                max_length=24,
            ),
        ),
    ]
