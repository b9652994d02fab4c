import sys

from django.core.management.base import BaseCommand

from spacedock.gitserver.repo import DEFAULT_BRANCH
from spacedock.spaces.models import Space

ZERO_SHA = "0" * 40


class Command(BaseCommand):
    help = "git's post-receive hook: queues a build for a new head of the default branch."

    def add_arguments(self, parser):
        parser.add_argument("space_id", type=int)

    def handle(self, space_id, **options):
        space = Space.objects.select_related("owner").get(pk=space_id)
        for line in sys.stdin:
            old, new, ref = line.split()
            if ref != f"refs/heads/{DEFAULT_BRANCH}" and new != ZERO_SHA:
                # Said, so that a push to `master` or a feature branch is not taken for a deploy.
                kind, _, short = ref.removeprefix("refs/").partition("/")
                what = "branch" if kind == "heads" else kind.rstrip("s")
                self.stdout.write(
                    f"Spacedock: {what} {short} is stored, not built: only {DEFAULT_BRANCH} builds and runs. "
                    f"To deploy it: git push <remote> {short}:{DEFAULT_BRANCH}"
                )
                continue
            if new == ZERO_SHA:
                continue
            build = space.record_push(new, ref)
            page = f"{space.git_url.replace('/spaces/', '/', 1)}"
            if build.state == "failed":
                self.stdout.write(f"Spacedock: {space.stage} at {new[:7]}: {build.error}")
            else:
                self.stdout.write(f"Spacedock: build {build.pk} of {new[:7]} queued.")
            self.stdout.write(f"Spacedock: follow it at {page}")
            self.stdout.write(f"Spacedock: the app will be at {space.url}")
