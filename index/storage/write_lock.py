"""One writer at a time on a data dir, across processes, and a way for readers to notice.

The embedded Chroma keeps its index in the memory of each process that opened it, and
Chroma's own docs say it is not multi-process safe: a bot that opened the store before a
``newsbot index`` from cron wrote to it goes on reading a stale index ("Error finding id").
So every write run holds ``write.lock`` in the data dir (an ``flock``, released by the
kernel even when the writer is killed), and stamps ``write.gen`` when it starts and ends.
A long-running reader compares that stamp before touching Chroma and reopens its client
once a write by someone else has finished (index/storage/vectors.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["LockBusy", "WriteLock", "WriteStamp"]

LOCK_NAME = "write.lock"
GEN_NAME = "write.gen"


class LockBusy(TimeoutError):
    """Another process kept the write lock for longer than we were willing to wait."""

    def __init__(self, path: Path, pid: int | None, waited: float) -> None:
        who = f"process {pid}" if pid else "another process"
        super().__init__(f"{who} is writing to {path.parent} (waited {waited:.0f} s)")
        self.pid = pid


@dataclass(frozen=True, slots=True)
class WriteStamp:
    """What a reader compares: ``key`` changes whenever a write run starts or ends;
    ``pid`` is the process that stamped it last."""

    key: tuple[int, int, int]
    pid: int | None


class WriteLock:
    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir
        self.path = data_dir / LOCK_NAME
        self.gen_path = data_dir / GEN_NAME
        self._fd: int | None = None
        self._stamps = True

    # -- writers ----------------------------------------------------------------------------

    def acquire(self, timeout: float | None = None, poll: float = 0.2, *,
                stamp: bool = True) -> None:
        """Block until this process is the only writer (``timeout`` None: forever).

        ``stamp=False``: hold the lock only to keep writers out (a backup copying the store),
        without telling readers that something was written, which would make them reopen
        their clients and reload their in-memory copies for nothing."""
        if self._fd is not None:
            raise RuntimeError("the write lock is already held by this object")
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        start = time.monotonic()
        told = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    waited = time.monotonic() - start
                    if timeout is not None and waited >= timeout:
                        raise LockBusy(self.path, self.writer(), waited) from None
                    if not told and timeout != 0:
                        log.info("waiting for another index run to finish",
                                 extra={"kv": {"pid": self.writer(), "lock": str(self.path)}})
                        told = True
                    time.sleep(poll)
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._stamps = stamp
        if stamp:
            self._stamp()

    async def acquire_async(
        self, timeout: float | None = None, poll: float = 0.2  # noqa: ASYNC109 - polled
    ) -> None:
        """:meth:`acquire` without blocking the event loop (and cancellable while waiting)."""
        start = time.monotonic()
        told = False
        while True:
            try:
                self.acquire(timeout=0)
                return
            except LockBusy as busy:
                waited = time.monotonic() - start
                if timeout is not None and waited >= timeout:
                    raise LockBusy(self.path, busy.pid, waited) from None
                if not told:
                    log.info("waiting for another index run to finish",
                             extra={"kv": {"pid": busy.pid, "lock": str(self.path)}})
                    told = True
            await asyncio.sleep(poll)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._stamps:
                self._stamp()
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the descriptor drops the flock

    @contextlib.contextmanager
    def hold(self, timeout: float | None = None, *, stamp: bool = True) -> Iterator[None]:
        self.acquire(timeout, stamp=stamp)
        try:
            yield
        finally:
            self.release()

    @property
    def held(self) -> bool:
        return self._fd is not None

    # -- readers ----------------------------------------------------------------------------

    def writer(self) -> int | None:
        """The pid of the process holding the lock now (0 if unknown), else None."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raw = os.pread(fd, 32, 0).strip()
                return int(raw) if raw.isdigit() else 0
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def stamp(self) -> WriteStamp | None:
        """The last start or end of a write run, or None if there never was one."""
        try:
            st = os.stat(self.gen_path)
        except FileNotFoundError:
            return None
        try:
            raw = self.gen_path.read_text(encoding="ascii").split()
            pid = int(raw[0]) if raw and raw[0].isdigit() else None
        except (OSError, ValueError):
            pid = None
        return WriteStamp((st.st_ino, st.st_mtime_ns, st.st_size), pid)

    def _stamp(self) -> None:
        # A new file each time (rename), so the inode changes even within one mtime tick.
        tmp = self.gen_path.with_name(f"{GEN_NAME}.{os.getpid()}.tmp")
        tmp.write_text(f"{os.getpid()} {time.time_ns()}\n", encoding="ascii")
        os.replace(tmp, self.gen_path)
