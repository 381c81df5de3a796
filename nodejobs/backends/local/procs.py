"""Finding and ending the processes of one local job run, and only those.

A run's processes are: its supervisor's tree, its payload's process group, and every process of the
user's that carries the run's mark ``NODEJOBS_RUN_ID=<run id>`` in its environment (inherited by all it
starts, so a double-forked daemon is found too). Signals go through pidfds opened *before* the check
that the process is the run's, so a recycled pid is never signalled. Ending a run looks again after
each round of signals, until a look finds nothing: what forks meanwhile is ended too.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import time
from collections.abc import Callable, Iterable, Sequence

from nodejobs.backends import host
from nodejobs.backends.base import RUN_MARK

PF_KTHREAD = 0x00200000  # /proc/<pid>/stat flag of a kernel thread (whose environment is always empty)
ENVIRON_FIRST_PAUSE = 0.0005  # s; an empty environment is read again after this, then twice as long...
ENVIRON_LAST_PAUSE = 0.008  # ...up to this (about 16 ms in all)
SWEEPS = 5  # find-and-end rounds: what is forked during one round (or was mid-exec) is found by the next
_MAX_POLL_MS = 2**31 - 1


def _poll_ms(timeout: float | None) -> int | None:
    """A poll() timeout in ms; None or a huge value (e.g. ``math.inf``) waits without limit."""
    if timeout is None or math.isinf(timeout):
        return None
    return min(_MAX_POLL_MS, max(0, math.ceil(timeout * 1000)))  # a 30-day wait is a loop of shorter ones


def wait_pidfd(fd: int, timeout: float | None) -> bool:
    """Block until the process behind ``fd`` exits or ``timeout`` passes; True if it exited."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(_poll_ms(timeout)))


class Member:
    """One process proven to belong to a run, held by a pidfd (so its pid cannot be recycled under us)."""

    __slots__ = ("fd", "pid")

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self.fd = fd

    def signal(self, sig: int) -> bool:
        try:
            signal.pidfd_send_signal(self.fd, sig)
            return True
        except ProcessLookupError:
            return False

    def alive(self) -> bool:
        found = host.proc_start(self.pid)
        return found is not None and found[1] != "Z" and not _readable(self.fd)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _readable(fd: int) -> bool:
    """A pidfd is readable once its process has exited."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _open(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def _environ_has(pid: int, mark: bytes) -> bool:
    """Whether ``pid``'s environment holds ``mark``. A process in the middle of an ``exec`` reads as an
    empty environment for a moment (the kernel is swapping its memory), so an empty read of a process
    that is not a kernel thread is read again, a few times, before it counts as unmarked."""
    pause = ENVIRON_FIRST_PAUSE
    while True:
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            return False
        if environ or pause > ENVIRON_LAST_PAUSE or _has_no_environment(pid):
            return mark in environ.split(b"\0")
        time.sleep(pause)  # bounded: a real exec takes well under a millisecond of this
        pause *= 2


def _has_no_environment(pid: int) -> bool:
    """True for a kernel thread, a zombie and a process that is gone."""
    st = _stat(pid)
    return st is None or st[2] == "Z" or bool(st[3] & PF_KTHREAD)


def _stat(pid: int) -> tuple[int, int, str, int] | None:
    """``(ppid, pgid, state, flags)`` of ``pid``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[1]), int(fields[2]), fields[0].decode(), int(fields[6])


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def find_members(
    run_id: str | None,
    roots: Iterable[tuple[int | None, int | None]] = (),
    group: int | None = None,
    boot: str | None = None,
    spare: Iterable[int] = (),
) -> list[Member]:
    """Every live process of a run: descendants of ``roots`` (pid, start ticks), members of process
    group ``group`` and carriers of the run's mark; each verified after its pidfd was opened.
    """
    if boot is not None and boot != host.boot_id():
        return []  # nothing of another boot is alive
    spared = {os.getpid(), *spare}
    mark = f"{RUN_MARK}={run_id}".encode() if run_id else None
    live_roots = {pid: start for pid, start in roots if pid is not None and host.is_alive(pid, start, boot)}
    stats = {pid: st for pid in _all_pids() if (st := _stat(pid)) is not None and st[2] != "Z"}
    marked = {pid for pid in stats if mark is not None and _environ_has(pid, mark)}
    tree = set(live_roots)
    grew = True
    while grew:  # descendants of the roots
        grew = False
        for pid, (ppid, _, _, _) in stats.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    # A group id names the run's group only while a process proven the run's is in it (the id of an
    # empty group can be recycled).
    if group is not None and not any(stats[p][1] == group for p in (tree | marked) if p in stats):
        group = None
    members = []
    for pid in stats:
        if pid in spared:
            continue
        fd = _open(pid)
        if fd is None:
            continue
        st = _stat(pid)  # checked after opening the fd: the fd is this very process
        if st is not None and st[2] != "Z" and (
            (pid in live_roots and host.is_alive(pid, live_roots[pid], boot))
            or (pid in tree and st[0] in tree)
            or (group is not None and st[1] == group)
            or (mark is not None and pid in marked and _environ_has(pid, mark))
        ):
            members.append(Member(pid, fd))
        else:
            os.close(fd)
    return members


def signal_all(members: Iterable[Member], sig: int) -> int:
    """Send ``sig`` to each member; the number still there to receive it."""
    return sum(member.signal(sig) for member in members)


def wait_gone(members: list[Member], timeout: float) -> list[Member]:
    """Wait up to ``timeout`` s until every member has exited; return those still running."""
    waiting = {m.fd: m for m in members if m.alive()}
    poller = select.poll()
    for fd in waiting:
        poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    while waiting:
        remaining = max(0.0, deadline - time.monotonic())
        for fd, _ in poller.poll(math.ceil(remaining * 1000)):  # polled once even at 0
            poller.unregister(fd)
            del waiting[fd]
        if remaining == 0:
            break
    # A process that exited but is not reaped by its (non-reaping) parent is gone for our purposes.
    return [m for m in waiting.values() if m.alive()]


def terminate(members: list[Member], grace: float) -> list[Member]:
    """SIGTERM the members, SIGKILL those left after ``grace`` s; return any that survived both."""
    signal_all(members, signal.SIGTERM)
    survivors = wait_gone(members, grace)
    if survivors:
        signal_all(survivors, signal.SIGKILL)
        survivors = wait_gone(survivors, max(grace, 1.0))
    return survivors


def end_all(finders: Sequence[Callable[[], list[Member]]], grace: float) -> list[bool]:
    """End every process each finder finds (``terminate``), looking again until a look finds nothing
    (at most ``SWEEPS`` rounds): a process forked while the last round signalled is ended too. Per
    finder, whether everything it found has ended."""
    ended = [True] * len(finders)
    looking = list(range(len(finders)))
    for _ in range(SWEEPS):
        found = {i: members for i in looking if (members := finders[i]())}
        if not found:
            break
        try:
            survivors = {m.pid for m in terminate([m for ms in found.values() for m in ms], grace)}
        finally:
            for members in found.values():
                close_all(members)
        for i, members in found.items():
            ended[i] = not any(m.pid in survivors for m in members)
        looking = [i for i in found if ended[i]]  # what survived SIGKILL is not signalled again
    return ended


def close_all(members: Iterable[Member]) -> None:
    for member in members:
        member.close()
