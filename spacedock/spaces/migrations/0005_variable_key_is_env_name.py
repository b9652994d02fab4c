import re

from django.db import migrations, models

KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,99}$"
RESERVED = ["SPACE_AUTHOR_NAME", "SPACE_HOST", "SPACE_ID", "SPACE_REPO_NAME", "SPACE_TITLE", "SYSTEM"]


def drop_unusable_keys(apps, schema_editor):
    # A key that is no environment variable name was never usable by a space: it can only
    # have come through the unchecked duplicate route, as an attempt to write files.
    Variable = apps.get_model("spaces", "Variable")
    bad = [v.pk for v in Variable.objects.all() if not re.fullmatch(KEY_PATTERN, v.key) or v.key in RESERVED]
    Variable.objects.filter(pk__in=bad).delete()


class Migration(migrations.Migration):
    dependencies = [("spaces", "0004_merge_builder_web")]

    operations = [
        migrations.RunPython(drop_unusable_keys, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="variable",
            constraint=models.CheckConstraint(
                condition=models.Q(key__regex=KEY_PATTERN) & ~models.Q(key__in=RESERVED),
                name="variable_key_is_env_name",
            ),
        ),
    ]
