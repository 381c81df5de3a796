"""The reaper thread: reaps this process's job supervisors the moment they exit.

It blocks in ``poll()`` on one pidfd per child plus a wake-up pipe, so it costs no CPU while idle and
reacts to an exit at once. After reaping it calls ``on_exit(job_id, popen)`` so the end is recorded
without anyone asking (``popen.returncode`` is the supervisor's exit code, that is the payload's).
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Reaper:
    """A daemon thread that reaps watched child processes and reports each exit."""

    def __init__(self, on_exit: Callable[[str, subprocess.Popen], None]) -> None:
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._watched: dict[int, tuple[str, subprocess.Popen]] = {}
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="nodejobs-reaper", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def watch(self, job_id: str, popen: subprocess.Popen) -> None:
        """Reap ``popen`` when it exits and then report ``job_id``."""
        try:
            fd = os.pidfd_open(popen.pid)
        except ProcessLookupError:
            popen.wait()
            self._report(job_id, popen)
            return
        with self._lock:
            self._watched[fd] = (job_id, popen)
        os.write(self._wake_w, b"w")

    def watched(self) -> list[str]:
        """Job ids whose supervisors are still being watched."""
        with self._lock:
            return [job_id for job_id, _ in self._watched.values()]

    def close(self) -> None:
        """Stop the thread; children not yet reaped are left to Python's subprocess clean-up."""
        if self._closing:
            return
        self._closing = True
        os.write(self._wake_w, b"q")
        self._thread.join()
        with self._lock:
            for fd in self._watched:
                os.close(fd)
            self._watched.clear()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _loop(self) -> None:
        while not self._closing:
            poller = select.poll()
            poller.register(self._wake_r, select.POLLIN)
            with self._lock:
                fds = list(self._watched)
            for fd in fds:
                poller.register(fd, select.POLLIN)
            for fd, _ in poller.poll():
                if fd == self._wake_r:
                    self._drain_wake_pipe()
                else:
                    self._reap(fd)

    def _drain_wake_pipe(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _reap(self, fd: int) -> None:
        with self._lock:
            job_id, popen = self._watched.pop(fd)
        os.close(fd)
        popen.wait()
        self._report(job_id, popen)

    def _report(self, job_id: str, popen: subprocess.Popen) -> None:
        try:
            self._on_exit(job_id, popen)
        except Exception:  # the thread must survive any one failure
            log.exception("recording the end of job %r failed", job_id)
