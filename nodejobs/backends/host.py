"""Processes of this machine, identified so a recycled pid is never mistaken for the one recorded.

A process is its pid *and* its start time (clock ticks since boot, from ``/proc``) *and* the boot id.
Used by the local backend for the jobs' processes, and by the lifecycle for the process that is
starting a job (a start its launcher did not live to finish is given up).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def _read_boot_id() -> str:
    with open("/proc/sys/kernel/random/boot_id") as f:
        return f.read().strip()


_BOOT_ID = _read_boot_id()


def boot_id() -> str:
    """This boot's id; records from an earlier boot cannot have live processes."""
    return _BOOT_ID


def read_proc(path: str, size: int = 4096) -> bytes | None:
    """The first ``size`` bytes of a small file such as ``/proc/<pid>/stat`` (plain system calls: these
    are read for every job at every refresh), or None if it (or its process) does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None  # other errors (e.g. out of file descriptors) are not an answer: they propagate
    try:
        return os.read(fd, size)
    except ProcessLookupError:
        return None
    finally:
        os.close(fd)


def proc_start(pid: int) -> tuple[int, str] | None:
    """``(start ticks since boot, state letter)`` of ``pid``, or None if there is no such process."""
    stat = read_proc(f"/proc/{pid}/stat")
    if not stat:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[19]), fields[0].decode()


def is_alive(pid: int | None, start: int | None, boot: str | None) -> bool:
    """True if ``pid`` is running, is the process that started at ``start``, and is not a zombie."""
    if pid is None or start is None or boot != _BOOT_ID:
        return False
    found = proc_start(pid)
    return found is not None and found[0] == start and found[1] != "Z"


_THIS: dict[int, int | None] = {}


def this_process() -> tuple[int, int | None]:
    """``(pid, start ticks)`` of the calling process (read once per process, at import)."""
    pid = os.getpid()
    if pid not in _THIS:
        found = proc_start(pid)
        _THIS.clear()
        _THIS[pid] = found[0] if found else None
    return pid, _THIS[pid]


def launcher_fields() -> dict[str, Any]:
    """The record fields naming the calling process as the launcher of a job, on this boot."""
    pid, start = this_process()
    return {"launcher_pid": pid, "launcher_start": start, "boot_id": _BOOT_ID}


def same_boot(record: Mapping[str, Any]) -> bool:
    """Whether ``record`` was written during this boot of the machine."""
    return record.get("boot_id") == _BOOT_ID


def launcher_alive(record: Mapping[str, Any]) -> bool:
    """Whether the process that launched ``record`` still runs (None if the record does not name it)."""
    if record.get("launcher_pid") is None:
        return True
    return is_alive(record["launcher_pid"], record.get("launcher_start"), record.get("boot_id"))


this_process()  # now, while file descriptors are surely to be had
