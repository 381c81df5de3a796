"""CPU and memory of local jobs, measured for all running jobs in one read of ``/proc``.

A job's processes are its payload's session (the payload runs under ``setsid``, so the session id is
its pid) and every descendant of the payload, wherever it moved (``setsid`` children included). The
supervisor shell is nodejobs' own and not counted. A process that left both — double-forked away from
the tree and the session — is not counted either (only ``stop`` searches the machine for the run's mark).
CPU % is the tree's CPU time over the wall time since the previous sample of the same job by the same
``UsageMeter`` (for the first sample: since the job's payload started).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence

from nodejobs.backends import host
from nodejobs.backends.base import Handle, Usage
from nodejobs.backends.host import read_proc

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


# A process as _scan reads it: (ppid, session, utime + stime ticks, threads, start ticks, rss pages)
_Proc = tuple[int, int, int, int, int, int]


def _scan() -> dict[int, _Proc]:
    """Every live process of the machine (one ``/proc/<pid>/stat`` read each)."""
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        stat = read_proc(f"/proc/{name}/stat")
        if not stat:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split(None, 22)
        if fields[0] == b"Z":
            continue
        procs[int(name)] = (int(fields[1]), int(fields[3]), int(fields[11]) + int(fields[12]),
                            int(fields[17]), int(fields[19]), int(fields[21]))  # fmt: skip
    return procs


def _uptime() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


class UsageMeter:
    """Measures jobs' usage; remembers each job's previous sample to give CPU % between samples."""

    def __init__(self) -> None:
        self._previous: dict[str, tuple[float, float]] = {}  # run id -> (cpu seconds, monotonic time)
        self._lock = threading.Lock()

    def usage(self, handles: Sequence[Handle]) -> list[Usage | None]:
        if not handles:
            return []
        procs = _scan()
        now, uptime = time.monotonic(), _uptime()
        children: dict[int, list[int]] = {}
        by_session: dict[int, list[int]] = {}
        for pid, proc in procs.items():
            children.setdefault(proc[0], []).append(pid)
            by_session.setdefault(proc[1], []).append(pid)
        out: list[Usage | None] = []
        for handle in handles:
            pid, start = handle["pid"]
            root = procs.get(pid)
            if root is None or root[4] != start or handle.get("boot") != host.boot_id():
                out.append(None)
                continue
            members = set(by_session.get(pid, ())) | {pid}
            todo = list(members)
            while todo:  # descendants, also those in sessions of their own
                for child in children.get(todo.pop(), ()):
                    if child not in members:
                        members.add(child)
                        todo.append(child)
            found = [procs[p] for p in members]
            cpu = sum(p[2] for p in found) / _TICK
            age = uptime - start / _TICK
            out.append(
                Usage(
                    cpu_percent=self._percent(handle.get("run") or str(pid), cpu, now, age),
                    rss=sum(p[5] for p in found) * _PAGE,
                    threads=sum(p[3] for p in found),
                    processes=len(found),
                    cpu_time=cpu,
                )
            )
        return out

    def _percent(self, key: str, cpu: float, now: float, age: float) -> float:
        with self._lock:
            before = self._previous.get(key)
            self._previous[key] = (cpu, now)
        if before is not None and now > before[1] and cpu >= before[0]:
            return 100.0 * (cpu - before[0]) / (now - before[1])
        return 100.0 * cpu / age if age > 0 else 0.0

    def forget(self, run_id: str | None) -> None:
        with self._lock:
            self._previous.pop(run_id or "", None)
