"""Reading a file only if, once opened, it lies under the allowed roots.

A path checked when a request names it can be swapped for a symlink (to the file, or to
a folder above it) before the job reads it. So the check is made on the opened file:
the last component is opened without following a symlink, the real path of the open
descriptor (``/proc/self/fd``) must lie under a root, and parsers then read that very
descriptor through a link of the file's own name to ``/proc/<pid>/fd/<n>``, which the
kernel resolves to the open file, never to whatever the path names by then.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

_READ_CHUNK = 1 << 20


class OutsideRootsError(ValueError):
    """The file (as opened) is not under any allowed root."""


def under(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


@dataclass(frozen=True, slots=True)
class OpenedFile:
    """A file to read: ``path`` names it for parsers (the original path when unconfined,
    a link to the open descriptor when confined)."""

    path: Path
    size: int
    confined: bool

    def sha256(self) -> str:
        digest = hashlib.sha256()
        with self.path.open("rb") as handle:
            while block := handle.read(_READ_CHUNK):
                digest.update(block)
        return digest.hexdigest()


@contextlib.contextmanager
def open_file(path: Path, roots: Sequence[str | Path] | None) -> Iterator[OpenedFile]:
    """``path`` to read; with ``roots``, only a regular file whose opened real path is
    under one of them (OutsideRootsError otherwise). ``roots`` None: no confinement."""
    if roots is None:
        yield OpenedFile(path, path.stat().st_size, confined=False)
        return
    # O_NONBLOCK: a FIFO put in the file's place must not hang the reader.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the file itself became a symlink
            raise OutsideRootsError(f"{path.name} became a symlink; not read") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        real = Path(os.readlink(f"/proc/self/fd/{fd}"))
        resolved_roots = [Path(root).resolve() for root in roots]
        if not under(real, resolved_roots):
            raise OutsideRootsError(f"{path.name} leads outside the allowed ingest roots")
        with tempfile.TemporaryDirectory(prefix="ragline-open-") as folder:
            link = Path(folder) / path.name
            link.symlink_to(f"/proc/{os.getpid()}/fd/{fd}")
            yield OpenedFile(link, info.st_size, confined=True)
    finally:
        os.close(fd)
