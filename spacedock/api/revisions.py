"""A revision in a URL, as huggingface_hub writes it: `quote(revision, safe="")`.

A branch named `feature/x` arrives as `feature%2Fx`; WSGI decodes PATH_INFO before Django's
URL patterns see it, so `/tree/feature%2Fx/dir` looks like rev `feature`, path `x/dir`. The
raw request line (gunicorn's RAW_URI, or REQUEST_URI) still has the `%2F`, so the rev is cut
from there. Without it (Django's test client), the rev is the longest run of leading segments
that names a commit.
"""

from pathlib import Path
from urllib.parse import unquote, urlsplit

from spacedock.gitserver import repo as gitrepo


def _raw_path(request) -> str | None:
    raw = request.META.get("RAW_URI") or request.META.get("REQUEST_URI")
    if not raw:
        return None
    return urlsplit(raw).path


def split_rev(request, repo: Path, rev: str, path: str = "") -> tuple[str, str]:
    """(revision, path in the repository) for a URL whose pattern cut `rev` and `path` at the first `/`."""
    rest = f"{rev}/{path}" if path else rev
    decoded = request.path.split("/")
    count = len(rest.split("/"))
    raw = _raw_path(request)
    if raw is not None:
        segments = raw.split("/")
        prefix = len(decoded) - count
        # The same route up to the rev (owner and name hold no "/"): the next raw segment is the rev.
        if len(segments) > prefix and [unquote(s) for s in segments[:prefix]] == decoded[:prefix]:
            return unquote(segments[prefix]), unquote("/".join(segments[prefix + 1 :]))
    parts = rest.split("/")
    for cut in range(len(parts), 1, -1):
        candidate = "/".join(parts[:cut])
        if gitrepo.resolve(repo, candidate) is not None:
            return candidate, "/".join(parts[cut:])
    return rev, path
