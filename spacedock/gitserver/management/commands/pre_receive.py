import os
import sys

from django.core.management.base import BaseCommand

from spacedock.gitserver import lfs_storage
from spacedock.gitserver.lfs import pointers_in_push
from spacedock.spaces.models import Space

ZERO_SHA = "0" * 40
SHOWN = 20


class Command(BaseCommand):
    help = "git's pre-receive hook: refuses a push whose Git LFS pointers name objects never uploaded."

    def add_arguments(self, parser):
        parser.add_argument("space_id", type=int)

    def handle(self, space_id, **options):
        space = Space.objects.get(pk=space_id)
        new = [line.split()[1] for line in sys.stdin if line.strip() and line.split()[1] != ZERO_SHA]
        pointers = pointers_in_push(space.repo_path, new, env=dict(os.environ))
        if not pointers:
            return
        known = set(space.lfs_objects.filter(oid__in={p.oid for p in pointers}).values_list("oid", "size"))
        missing = [p for p in pointers if (p.oid, p.size) not in known or not lfs_storage.has(p.oid, p.size)]
        if not missing:
            return
        lines = [
            f"Spacedock: push refused: {len(missing)} Git LFS file(s) point to objects this space "
            "never received:"
        ]
        lines += [f"  {p.path} (oid {p.oid[:12]}…, {p.size} bytes)" for p in missing[:SHOWN]]
        if len(missing) > SHOWN:
            lines.append(f"  … and {len(missing) - SHOWN} more")
        lines += [
            "Install Git LFS (`git lfs install`) and push again: git-lfs uploads the objects first.",
            "If the objects are lost, `git lfs push --all origin` from a clone that has them, or commit",
            "the real files again.",
        ]
        self.stderr.write("\n".join(lines))
        sys.exit(1)
