"""Processes of this machine, identified so a recycled pid is never mistaken for the one recorded.

A process is its pid *and* its start time (clock ticks since boot, from ``/proc``) *and* the boot id.
Used by the local backend for the jobs' processes, and by the lifecycle for the process that is
starting a job (a start its launcher did not live to finish is given up).
"""

from __future__ import annotations

import os


def _read_boot_id() -> str:
    with open("/proc/sys/kernel/random/boot_id") as f:
        return f.read().strip()


_BOOT_ID = _read_boot_id()


def boot_id() -> str:
    """This boot's id; records from an earlier boot cannot have live processes."""
    return _BOOT_ID


def read_proc(path: str, size: int = 4096) -> bytes | None:
    """The first ``size`` bytes of a small file such as ``/proc/<pid>/stat`` (plain system calls: these
    are read for every job at every refresh), or None if it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, size)
    except OSError:
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


def this_process() -> tuple[int, int | None]:
    """``(pid, start ticks)`` of the calling process."""
    found = proc_start(os.getpid())
    return os.getpid(), found[0] if found else None
