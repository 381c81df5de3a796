"""The reaper thread: reports each local job's end the moment its exit file is written, and reaps the
supervisors this process started, with a fixed number of file descriptors whatever the number of jobs.

It blocks in ``poll()`` on one inotify instance (watching the log directories for exit files) and a
wake-up pipe, so it costs no CPU while idle. Supervisors are reaped with a non-blocking ``waitpid`` on
each pass (at most a second apart while any is alive), which also catches one killed before it could
write its exit file; a supervisor that wrote its exit file is reaped within milliseconds. Without
inotify (rare), the exit files are looked at on each pass instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import struct
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

_IN_CLOSE_WRITE, _IN_MOVED_TO, _IN_Q_OVERFLOW = 0x8, 0x80, 0x4000
_IN_NONBLOCK, _IN_CLOEXEC = 0o4000, 0o2000000
_EVENT = struct.Struct("iIII")
SWEEP_INTERVAL = 1.0
REAP_INTERVAL = 0.01  # while a supervisor that wrote its exit file has not exited yet


@dataclass
class _Watched:
    popen: subprocess.Popen
    exit_path: str
    on_end: Callable[[int | None], None]  # called with the supervisor's exit status if it was reaped
    reported: bool = False


class _Inotify:
    """The few inotify calls the reaper needs, through libc."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.dirs: dict[int, str] = {}

    def add(self, directory: str) -> None:
        if directory in self.dirs.values():
            return
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(directory), _IN_CLOSE_WRITE | _IN_MOVED_TO)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {directory} failed")
        self.dirs[wd] = directory

    def read(self) -> tuple[list[str], bool]:
        """Paths written since the last read, and whether events were lost (queue overflow)."""
        paths: list[str] = []
        overflow = False
        while True:
            try:
                data = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                return paths, overflow
            offset = 0
            while offset < len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
                offset += _EVENT.size + length
                if mask & _IN_Q_OVERFLOW:
                    overflow = True
                elif wd in self.dirs:
                    paths.append(os.path.join(self.dirs[wd], os.fsdecode(name)))

    def close(self) -> None:
        os.close(self.fd)


class Reaper:
    """A daemon thread that reports job ends and reaps the supervisors this process started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_path: dict[str, _Watched] = {}
        self._children: dict[int, _Watched] = {}
        try:
            self._inotify: _Inotify | None = _Inotify()
        except (OSError, AttributeError) as exc:
            log.info("no inotify (%s): job ends are noticed within %.0f s", exc, SWEEP_INTERVAL)
            self._inotify = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="nodejobs-reaper", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def watch(self, popen: subprocess.Popen, exit_path: str, on_end: Callable[[int | None], None]) -> None:
        """Call ``on_end`` once the supervisor ``popen`` writes ``exit_path`` or exits; reap it."""
        entry = _Watched(popen, exit_path, on_end)
        with self._lock:
            if self._inotify is not None:
                try:
                    self._inotify.add(os.path.dirname(exit_path))
                except OSError as exc:
                    log.warning("cannot watch %s: %s", exit_path, exc)
            self._by_path[exit_path] = entry
            self._children[popen.pid] = entry
        if os.path.exists(exit_path):  # written before the watch began
            self._report(entry, None)
        os.write(self._wake_w, b"w")

    def watched(self) -> list[str]:
        """Exit files of the supervisors still being watched."""
        with self._lock:
            return [entry.exit_path for entry in self._children.values()]

    def close(self) -> None:
        """Stop the thread; supervisors not yet reaped are left to Python's subprocess clean-up."""
        if self._closing:
            return
        self._closing = True
        os.write(self._wake_w, b"q")
        self._thread.join()
        if self._inotify is not None:
            self._inotify.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _loop(self) -> None:
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        if self._inotify is not None:
            poller.register(self._inotify.fd, select.POLLIN)
        while not self._closing:
            with self._lock:
                exiting = any(entry.reported for entry in self._children.values())
                interval = REAP_INTERVAL if exiting else SWEEP_INTERVAL if self._children else None
            poller.poll(None if interval is None else int(interval * 1000))
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake_r, 4096):
                    pass
            self._read_events()
            self._sweep()

    def _read_events(self) -> None:
        paths: list[str] = []
        if self._inotify is None:
            overflow = True
        else:
            paths, overflow = self._inotify.read()
        with self._lock:
            if overflow:
                paths = [p for p in self._by_path if os.path.exists(p)]
            entries = [self._by_path[p] for p in paths if p in self._by_path]
        for entry in entries:
            self._report(entry, None)

    def _sweep(self) -> None:
        with self._lock:
            entries = list(self._children.values())
        for entry in entries:
            code = entry.popen.poll()
            if code is None:
                continue
            with self._lock:
                self._children.pop(entry.popen.pid, None)
            self._report(entry, code)

    def _report(self, entry: _Watched, code: int | None) -> None:
        with self._lock:
            if self._by_path.get(entry.exit_path) is entry:
                del self._by_path[entry.exit_path]
            elif entry.reported and code is None:
                return
            first = not entry.reported
            entry.reported = True
        if first or code is not None:
            try:
                entry.on_end(code)
            except Exception:  # the thread must survive any one failure
                log.exception("recording the end of the job writing %s failed", entry.exit_path)
