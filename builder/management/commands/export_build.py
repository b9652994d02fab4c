from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from builder.archive import ArchiveError, export_build
from spacedock.spaces.models import Build


class Command(BaseCommand):
    help = "Writes a build's image and source commit to one file that import_build restores."

    def add_arguments(self, parser):
        parser.add_argument("build", type=int, help="the build's id (the space's Builds tab shows it)")
        parser.add_argument("-o", "--output", help="the file to write (default: build-<id>.tar)")

    def handle(self, build, output, **options):
        found = Build.objects.select_related("space__owner").filter(pk=build).first()
        if found is None:
            raise CommandError(f"there is no build {build}")
        dest = Path(output or f"build-{build}.tar")
        try:
            export_build(found, dest)
        except ArchiveError as exc:
            raise CommandError(str(exc)) from None
        what = f"build {build} of {found.space.full_name} at {found.commit_sha[:7]}"
        self.stderr.write(f"{what}: {dest.stat().st_size / 2**20:.0f} MiB")
        self.stdout.write(str(dest))
