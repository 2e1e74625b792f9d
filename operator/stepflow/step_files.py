"""The files a local step can reach (its log, its ``$STEPFLOW_OUTPUTS``), opened so that nothing
the step leaves at their paths can block the runner.

A step may replace either file with a FIFO (``mkfifo "$STEPFLOW_OUTPUTS"``), a symlink to
``/dev/zero`` or a directory. An ``open()`` of a FIFO without a writer waits for ever, and the
runner's event loop with it: timeouts, Ctrl-C and every other step. So files are created afresh
rather than opened where they are, read only once ``fstat`` says they are regular files, opened
without waiting (``O_NONBLOCK``), and read up to a bound.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import BinaryIO

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class NotARegularFile(OSError):
    """The path holds something other than a regular file; ``str()`` says what."""


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def fresh(path: Path, *, append: bool = False) -> BinaryIO:
    """``path`` as a regular file open for writing. Appending keeps a regular file's content;
    anything else the step left there (a FIFO, a symlink, a directory) is removed first, never
    opened or written through."""
    if append:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError:
            pass  # absent, a symlink (ELOOP), a FIFO without a reader (ENXIO), a directory...
        else:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.set_blocking(fd, True)
                return os.fdopen(fd, "ab")
            os.close(fd)
    _remove(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    return os.fdopen(fd, "wb")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def read_regular(path: Path, limit: int, *, tail: bool = False) -> bytes:
    """At most ``limit`` bytes of a regular file, its first or (``tail``) its last ones. Raises
    NotARegularFile for anything else, and OSError if it cannot be opened; never waits for a
    writer, and never reads more than asked whatever the file says its size is."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFile(_kind(info.st_mode))
        if tail and info.st_size > limit:
            os.lseek(fd, info.st_size - limit, os.SEEK_SET)
        chunks, left = [], limit
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
