from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from builder.archive import ArchiveError, import_build
from builder.docker_build import BuildError


class Command(BaseCommand):
    help = "Restores a build written by export_build: its space, commit, image and pin."

    def add_arguments(self, parser):
        parser.add_argument("archive", help="the file export_build wrote")
        parser.add_argument("--owner", help="restore into this user's space (default: the exported owner)")
        parser.add_argument("--name", help="restore into this space name (default: the exported name)")

    def handle(self, archive, owner, name, **options):
        try:
            build = import_build(Path(archive), owner=owner, name=name)
        except (ArchiveError, BuildError) as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(f"restored build {build.pk} of {build.space.full_name} at {build.commit_sha[:7]}")
        if build.pinned:
            self.stderr.write(f"pinned at {build.pinned_url}")
        self.stdout.write(str(build.pk))
