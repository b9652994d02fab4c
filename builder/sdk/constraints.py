"""Prints the pip constraints a space's own requirements file installs under.

Runs inside a space's build, on the SDK image's Python. The SDK image's lock holds Gradio and
every dependency as of that Gradio release; installed on top, a requirements file must not drag
them forward (today's huggingface_hub breaks Gradio 4). So the lock is the constraints, except
for a package the file itself pins to a version the lock does not have: the author asked for it,
and gets it. Gradio always stays at the space's sdk_version.

usage: python constraints.py REQUIREMENTS_FILE > constraints.txt   (notes go to stderr)
"""

import sys

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

LOCK = "/opt/sdk/requirements.lock"


def requirement_lines(text: str) -> list[str]:
    """A requirements file's requirement lines: continuations joined, comments and options dropped."""
    lines = []
    for line in text.replace("\\\n", "").splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            lines.append(line)
    return lines


def parse(line: str) -> Requirement | None:
    try:
        return Requirement(line)
    except InvalidRequirement:
        return None  # a URL or path alone: pip says what it makes of it


def constraints(lock_text: str, requirements_text: str) -> tuple[list[str], list[str]]:
    """(constraint lines, notes for the log)."""
    locked = {canonicalize_name(r.name): r for r in map(parse, requirement_lines(lock_text)) if r}
    released, notes = set(), []
    for line in requirement_lines(requirements_text):
        req = parse(line)
        name = canonicalize_name(req.name) if req else ""
        if name not in locked or name == "gradio" or (req.marker and not req.marker.evaluate()):
            continue
        version = next(iter(locked[name].specifier)).version
        if req.url or (req.specifier and not req.specifier.contains(version, prereleases=True)):
            released.add(name)
            notes.append(f"{line} replaces {locked[name]} from the Gradio image's lock")
    return [str(r) for name, r in locked.items() if name not in released], notes


def main(requirements_path: str) -> None:
    with open(LOCK) as lock, open(requirements_path) as requirements:
        lines, notes = constraints(lock.read(), requirements.read())
    for note in notes:
        print(f"==> {note}", file=sys.stderr)
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1])
