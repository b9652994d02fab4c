"""Why a build or an app failed, in one line and a hint, found in its log: the pages show the cause
first and the raw log once, below.

The patterns are the failures authors meet most (pip, apt, imports, the app's port, memory); the
last match in the text wins, since a log's last error is usually the one that stopped it."""

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Cause:
    line: str
    hint: str


PATTERNS: list[tuple[re.Pattern, str]] = [
    (
        re.compile(r"No matching distribution found for (\S+)"),
        "pip found no release of {0}: check its name and version pin in requirements.txt "
        "(a pin may be newer than the release, or need another Python).",
    ),
    (
        re.compile(r"Could not find a version that satisfies the requirement (\S+)"),
        "pip found no release of {0} that fits: loosen its pin in requirements.txt.",
    ),
    (
        re.compile(r"ResolutionImpossible|Cannot install .* because these package versions have conflicting"),
        "Two requirements ask for versions that cannot go together: loosen a pin in requirements.txt "
        "(Gradio's own pins come with sdk_version).",
    ),
    (
        re.compile(r"E: Unable to locate package (\S+)"),
        "Debian has no package {0}: check packages.txt (one Debian bookworm package per line).",
    ),
    (
        re.compile(r"ModuleNotFoundError: No module named '([^'.]+)"),
        "The app imports {0}, which is not installed: add its package to requirements.txt.",
    ),
    (
        re.compile(r"ImportError: cannot import name '([^']+)'"),
        "An installed package lacks {0}: usually a version mismatch; "
        "pin the version the code was written for.",
    ),
    (
        re.compile(
            r"(FileNotFoundError|SyntaxError|NameError|TypeError|ValueError|KeyError|AttributeError): "
        ),  # noqa: E501
        "The app raised {0} at start: the traceback above it in the log says where.",
    ),
    (
        re.compile(r"(?:Address already in use|Cannot find empty port)"),
        "The app could not listen on its port: launch() with the defaults, or set app_port in README.md.",
    ),
    (
        re.compile(r"(?:out of memory|OOMKilled|MemoryError|Killed$)", re.I),
        "The app ran out of memory: use a smaller model, or ask for more memory.",
    ),
]


def find_cause(text: str) -> Cause | None:
    """The last known failure in `text`, as its line and a hint; None when none is known."""
    found: Cause | None = None
    at = -1
    for pattern, hint in PATTERNS:
        for match in pattern.finditer(text):
            if match.start() >= at:
                start = text.rfind("\n", 0, match.start()) + 1
                end = text.find("\n", match.end())
                line = text[start : end if end >= 0 else len(text)].strip()
                found, at = Cause(line=line[:300], hint=hint.format(*match.groups())), match.start()
    return found
