#!/usr/bin/env python3
import os
import sys
from pathlib import Path


def _into_venv() -> None:
    """Run under the project's virtual environment (made by `make up`) whatever python started us,
    so `./manage.py ...` works as the README writes it, with or without `. .venv/bin/activate`."""
    venv = Path(__file__).resolve().parent / ".venv"
    python = venv / "bin" / "python"
    # The flag stops a loop should the venv's python not report the venv as its prefix; popped so
    # that commands this one starts (hooks, workers) still find the venv themselves.
    if os.environ.pop("SPACEDOCK_MANAGE_REEXEC", None):
        return
    if not python.exists() or Path(sys.prefix).resolve() == venv.resolve():
        return
    os.environ["SPACEDOCK_MANAGE_REEXEC"] = "1"
    os.execv(str(python), [str(python), *sys.argv])


if __name__ == "__main__":
    _into_venv()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spacedock.settings")
    try:
        from django.core.management import execute_from_command_line
    except ImportError:
        sys.exit("Django is not installed: `make up` (or `make install`) makes .venv, which manage.py uses")

    execute_from_command_line(sys.argv)
