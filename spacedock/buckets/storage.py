"""A bucket's files on disk, read and written without following symbolic links.

A space mounts its bucket read-write, so the app inside can put anything there, symbolic links
included: one pointing at /etc/shadow must not be served, listed, or written through by the
platform. Every path is opened one component at a time from the bucket's folder with
O_NOFOLLOW, so a link (even one swapped in during the walk) ends the walk instead of leaving
the bucket.
"""

import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MAX_PATH = 1024
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class BadPath(ValueError):
    """A path that cannot name a file in a bucket; the message says why."""


def check_path(path: object) -> list[str]:
    """The components of a relative bucket path, or BadPath."""
    if not isinstance(path, str) or not path or len(path) > MAX_PATH or "\x00" in path:
        raise BadPath(f"A bucket path is a non-empty string of at most {MAX_PATH} characters")
    parts = path.strip("/").split("/")
    if path.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise BadPath(
            f"{path[:100]!r} is not a relative path inside the bucket (no '..', '.', or empty parts)"
        )
    return parts


@dataclass
class Entry:
    path: str
    is_dir: bool
    size: int = 0
    mtime: float = 0.0

    @property
    def etag(self) -> str:
        """A stand-in for the Hub's xetHash: changes when the file's size or time does (no content read)."""
        return hashlib.sha256(f"{self.path}\0{self.size}\0{self.mtime}".encode()).hexdigest()


@contextmanager
def open_dir(root: Path, parts: list[str], create: bool = False) -> Iterator[int]:
    """A descriptor of root/parts..., each component opened without following links."""
    fd = os.open(root, DIR_FLAGS)
    try:
        for part in parts:
            if create:
                try:
                    os.mkdir(part, 0o775, dir_fd=fd)
                except FileExistsError:
                    pass
            child = os.open(part, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def stat_file(root: Path, path: str) -> Entry | None:
    """The regular file at `path`, or None (missing, a folder, a link, or a path through a link)."""
    parts = check_path(path)
    try:
        with open_dir(root, parts[:-1]) as fd:
            info = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return Entry("/".join(parts), False, info.st_size, info.st_mtime)


def open_file(root: Path, path: str):
    """The regular file at `path` opened for reading, the caller closes it (FileNotFoundError otherwise)."""
    parts = check_path(path)
    try:
        with open_dir(root, parts[:-1]) as fd:
            file_fd = os.open(
                parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=fd
            )
    except OSError:
        raise FileNotFoundError(path) from None
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):  # a FIFO or device an app left
        os.close(file_fd)
        raise FileNotFoundError(path)
    return os.fdopen(file_fd, "rb")


def walk(root: Path, prefix: str = "", recursive: bool = True) -> Iterator[Entry]:
    """Files (and, when not recursive, folders) under `prefix`, links skipped, sorted by path."""
    parts = check_path(prefix) if prefix else []
    try:
        with open_dir(root, parts) as fd:
            yield from _walk(fd, "/".join(parts), recursive)
    except OSError:
        return


def _walk(fd: int, base: str, recursive: bool) -> Iterator[Entry]:
    entries = sorted(os.scandir(fd), key=lambda e: e.name)
    for entry in entries:
        path = f"{base}/{entry.name}" if base else entry.name
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISREG(info.st_mode):
            yield Entry(path, False, info.st_size, info.st_mtime)
        elif stat.S_ISDIR(info.st_mode):
            if not recursive:
                yield Entry(path, True, 0, info.st_mtime)
                continue
            try:
                child = os.open(entry.name, DIR_FLAGS, dir_fd=fd)
            except OSError:
                continue
            try:
                yield from _walk(child, path, recursive)
            finally:
                os.close(child)


def used_bytes(root: Path) -> tuple[int, int]:
    """(bytes, files) of the bucket's regular files."""
    size = count = 0
    for entry in walk(root):
        size += entry.size
        count += 1
    return size, count


def write_file(root: Path, path: str, chunks: Iterator[bytes], limit: int) -> int:
    """Writes `path` from `chunks`, stopping with OverflowError past `limit` bytes; returns the size.
    The file appears whole or not at all (a temporary name, then a rename)."""
    parts = check_path(path)
    written = 0
    with open_dir(root, parts[:-1], create=True) as fd:
        tmp = f".{parts[-1]}.upload-{os.getpid()}-{id(chunks)}"
        file_fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o664, dir_fd=fd
        )
        try:
            with os.fdopen(file_fd, "wb") as out:
                for chunk in chunks:
                    written += len(chunk)
                    if written > limit:
                        raise OverflowError(written)
                    out.write(chunk)
            os.rename(tmp, parts[-1], src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=fd)
            except OSError:
                pass
            raise
    return written


def delete_file(root: Path, path: str) -> bool:
    parts = check_path(path)
    try:
        with open_dir(root, parts[:-1]) as fd:
            info = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                return False
            os.unlink(parts[-1], dir_fd=fd)  # a link is removed itself, never its target
        return True
    except OSError:
        return False
