"""Exclusive OS locks between processes (``fcntl.flock``): one run per town at a time,
one unpacking of an archive at a time.

A lock is a small file; the process holding it writes its pid and host there, so a
process that has to wait says who it waits for. The OS releases the lock when the holder
exits, even when it is killed, so a stale lock file never blocks a later run.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from geo.errors import GeoError

__all__ = ["LockTimeoutError", "file_lock"]

log = logging.getLogger(__name__)


class LockTimeoutError(GeoError, TimeoutError):
    """Another process held the lock longer than the caller was willing to wait."""


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str], *, what: str,
              timeout_s: float | None = None) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` (created with its folder) while in the block.

    Parameters
    ----------
    path
        The lock file.
    what
        What the lock protects, for the log line shown while waiting ("town 01306").
    timeout_s
        Give up after this many seconds (``None``: wait as long as it takes).

    Raises
    ------
    LockTimeoutError
        When ``timeout_s`` passes before the lock is free.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            log.info("%s is being built by %s; waiting for it to finish", what, holder)
            start = time.monotonic()
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if timeout_s is not None and time.monotonic() - start > timeout_s:
                        raise LockTimeoutError(
                            f"{what}: still locked by {holder} after {timeout_s:g} s "
                            f"({path})") from None
                    time.sleep(0.2)
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
            fh.flush()
            yield path
        finally:
            with contextlib.suppress(OSError):
                fh.seek(0)
                fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)
