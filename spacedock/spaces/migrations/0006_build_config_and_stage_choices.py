from django.db import migrations, models


def head_fields(space) -> dict:
    return {
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


def fill_build_config(apps, schema_editor):
    # Builds from before a build carried its config: what README.md said at the build's commit
    # (what the builder read then), else what the space shows now.
    from spacedock.gitserver import repo as gitrepo
    from spacedock.spaces import config as spaceconfig

    Build = apps.get_model("spaces", "Build")
    for build in Build.objects.filter(config={}).select_related("space__owner"):
        space = build.space
        try:
            path = gitrepo.path_for(space.owner.username, space.name)
            readme = gitrepo.read_file(path, build.commit_sha, "README.md")
            if readme is None:
                raise spaceconfig.ConfigError("no README.md")
            config = spaceconfig.parse(readme.decode("utf-8", "replace")).as_dict()
        except (spaceconfig.ConfigError, OSError, ValueError):
            config = head_fields(space)
        Build.objects.filter(pk=build.pk).update(config=config)


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
