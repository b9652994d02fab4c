"""Where Git LFS objects live: content-addressed files, one per sha256, shared by the install.

The storage only holds bytes. Who may read an object is decided per space (LfsObject rows),
never by knowing its oid. SPACEDOCK_LFS_STORAGE names the backend; "local" (the data folder)
is the one built, and the interface (has/size/open/put/path) is what another one must offer.
"""

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

OID = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1024 * 1024


class BadObject(ValueError):
    """The bytes sent are not the object announced: another sha256 or another size."""


def valid_oid(oid: str) -> bool:
    return bool(OID.match(oid or ""))


def object_path(oid: str) -> Path:
    if not valid_oid(oid):
        raise ValueError(f"{oid!r} is not a sha256 oid")
    return Path(settings.LFS_DIR) / oid[0:2] / oid[2:4] / oid


def size(oid: str) -> int | None:
    """The stored object's size, or None when it is not stored."""
    try:
        return object_path(oid).stat().st_size
    except FileNotFoundError:
        return None


def has(oid: str, expected_size: int | None = None) -> bool:
    stored = size(oid)
    return stored is not None and (expected_size is None or stored == expected_size)


def open_object(oid: str) -> BinaryIO:
    return object_path(oid).open("rb")


def put(oid: str, expected_size: int, chunks: Iterable[bytes]) -> None:
    """Stores the object from its bytes, checked against its oid and size before it becomes visible."""
    final = object_path(oid)
    final.parent.mkdir(parents=True, exist_ok=True)
    digest, written = hashlib.sha256(), 0
    fd, temp = tempfile.mkstemp(dir=final.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                written += len(chunk)
                if written > expected_size:
                    raise BadObject(f"more than the announced {expected_size} bytes were sent")
                digest.update(chunk)
                out.write(chunk)
        if written != expected_size:
            raise BadObject(f"{written} bytes were sent, the object has {expected_size}")
        if digest.hexdigest() != oid:
            raise BadObject(f"the bytes sent have sha256 {digest.hexdigest()}, not {oid}")
        # Same oid, same bytes: a concurrent upload of the same object replaces it harmlessly.
        os.replace(temp, final)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
