import sys

from django.core.management.base import BaseCommand

from spacedock.gitserver.repo import DEFAULT_BRANCH
from spacedock.spaces.models import Deployment, Space

ZERO_SHA = "0" * 40


class Command(BaseCommand):
    help = (
        "git's post-receive hook: queues a build for a new head of a branch (another branch than the "
        "default builds its preview), and removes a deleted branch's preview."
    )

    def add_arguments(self, parser):
        parser.add_argument("space_id", type=int)

    def handle(self, space_id, **options):
        space = Space.objects.select_related("owner").get(pk=space_id)
        page = f"{space.git_url.replace('/spaces/', '/', 1)}"
        for line in sys.stdin:
            old, new, ref = line.split()
            if not ref.startswith("refs/heads/"):
                # Said, so that a pushed tag is not taken for a deploy.
                kind, _, short = ref.removeprefix("refs/").partition("/")
                self.stdout.write(
                    f"Spacedock: {kind.rstrip('s')} {short} is stored, not built: only branches build. "
                    f"To deploy it: git push <remote> {short}:{DEFAULT_BRANCH}"
                )
                continue
            branch = ref.removeprefix("refs/heads/")
            if new == ZERO_SHA:
                if branch != DEFAULT_BRANCH and Deployment.branch_deleted(space, branch):
                    self.stdout.write(f"Spacedock: the preview of {branch} is removed, with its images.")
                continue
            build = space.record_push(new, ref)
            preview = build.preview()
            if build.state == "failed":
                stage = preview.stage if preview else space.stage
                self.stdout.write(f"Spacedock: {stage} at {new[:7]}: {build.error}")
            else:
                self.stdout.write(f"Spacedock: build {build.pk} of {new[:7]} queued.")
            self.stdout.write(f"Spacedock: follow it at {page}")
            if preview is not None:
                self.stdout.write(
                    f"Spacedock: the preview of {branch} will be at {preview.url} "
                    f"({space.url} keeps serving {DEFAULT_BRANCH})"
                )
            else:
                self.stdout.write(f"Spacedock: the app will be at {space.url}")
