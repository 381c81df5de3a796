"""``LocalBackend``: each job a detached process group on this machine under a tiny shell supervisor.

Each job runs as::

    sh supervisor (session and process-group leader)  ->  payload: the user's program

The supervisor (``nodejobs-supervisor``, ``/bin/sh``: dash on Debian, well under 1 MB) waits for the payload,
writes its exit code to the exit file and exits with the same code; so the end is recorded even if
the Python process that launched the job is gone. The handle names both processes by pid, start time
and boot id (``host``), so a recycled pid is never mistaken for a job. What a job leaves running when
its program ends is ended by the supervisor (``leftovers``), and by ``cancel``. Starting the supervisor
and telling its held payload from the program is ``launch``; finding and ending processes, ``procs``.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from nodejobs.backends import base, host
from nodejobs.backends.base import Backend, Capabilities, Handle, JobSpec, Observation, SubmitError, Usage
from nodejobs.backends.local import launch
from nodejobs.backends.local.procs import Member, end_all, find_members, wait_pidfd
from nodejobs.backends.local.reaper import Reaper
from nodejobs.backends.local.usage import UsageMeter
from nodejobs.backends.supervisor import (
    HELD_BY_CHANNEL,
    LEFTOVER_GRACE,
    TIMER_SUFFIXES,
    supervisor_args,
    timer_marks,
)
from nodejobs.backends.supervisor.exitfile import read_exit_file
from nodejobs.store.files import remove_if_exists

log = logging.getLogger(__name__)

SETTLE_STEP = 0.0002  # seconds between looks at a just-released program
REBOOT_REASON = "the machine restarted while the job was active"
LOST_REASON = "the supervisor ended without recording an exit code (killed, or the machine restarted)"


class LocalBackend(Backend):
    """Runs jobs as local process groups supervised by ``/bin/sh``."""

    name = "local"
    capabilities = Capabilities(end_notification=True, resource_usage=True)
    side_suffixes = TIMER_SUFFIXES

    def __init__(self, reaper: bool = True, leftover_grace: float = LEFTOVER_GRACE) -> None:
        self.leftover_grace = leftover_grace
        self._reaper = Reaper() if reaper else None
        self._held: dict[str, socket.socket] = {}
        self._children: dict[int, subprocess.Popen] = {}  # supervisors this instance started, by pid
        self._released: set[str] = set()  # runs this instance let go (their shell may not know yet)
        self._recorded: set[int] = set()  # supervisors whose job's end is recorded, not yet reaped
        self._meter = UsageMeter()
        self._lock = threading.Lock()

    # -- creating ----------------------------------------------------------------------------------

    def submit(self, spec: JobSpec) -> Handle:
        args = supervisor_args(spec, self.leftover_grace, HELD_BY_CHANNEL, spec.on_end)
        try:
            argv = launch.supervisor_command(args)
            for path in (spec.exit_path, *timer_marks(spec.exit_path), spec.out_path, spec.err_path):
                remove_if_exists(path)  # nothing of an earlier run of the id may be taken for this one's
            channel, supervisor_end = socket.socketpair()
        except OSError as exc:
            raise SubmitError(f"cannot start: {exc.strerror or exc}") from None
        try:
            popen = launch.spawn(argv, spec, supervisor_end.fileno())
            pid = launch.read_pid(channel.fileno())
            sup = host.proc_start(popen.pid)
            started = host.proc_start(pid) if pid is not None else None
        except (OSError, ValueError) as exc:
            channel.close()  # a supervisor that got this far sees EOF and exits without starting
            raise SubmitError(f"cannot start: {getattr(exc, 'strerror', None) or exc}") from None
        finally:
            supervisor_end.close()
        if pid is None:
            channel.close()
            raise SubmitError("cannot start: the supervisor did not report the program's pid")
        handle = {
            "supervisor": [popen.pid, sup[0] if sup else 0],
            "pid": [pid, started[0] if started else None],
            "boot": host.boot_id(),
            "run": spec.run_id,
            "exit": spec.exit_path,
            "out": spec.out_path,
            "err": spec.err_path,
        }
        with self._lock:
            self._held[spec.run_id] = channel
            self._children[popen.pid] = popen
        return handle

    def release(self, handle: Handle, start: bool = True) -> None:
        with self._lock:
            channel = self._held.pop(handle["run"], None)
        if channel is None:
            return  # not held by this instance: it starts only if its holder releases it
        try:
            if start:
                channel.sendall(b"go\n")
                with self._lock:
                    self._released.add(handle["run"])
        except OSError:
            pass  # the supervisor is gone already; its end is observed like any other
        finally:
            channel.close()

    # -- observing ---------------------------------------------------------------------------------

    def observe(self, handles: Sequence[Handle]) -> list[Observation]:
        return [self._observe(h) for h in handles]

    def _observe(self, handle: Handle) -> Observation:
        sup_pid, sup_start = handle["supervisor"]
        ended = read_exit_file(handle["exit"], sup_pid)
        if ended is not None:
            return ended
        boot = handle.get("boot")
        if host.is_alive(sup_pid, sup_start, boot):
            return Observation(base.RUNNING if self.released(handle) else base.HELD)
        ended = read_exit_file(handle["exit"], sup_pid)  # it may have just written it
        if ended is not None:
            return ended
        with self._lock:
            child = self._children.get(sup_pid)
        code = child.poll() if child is not None else None
        if code is not None and code >= 0:  # no exit file (e.g. disk full), but we reaped our child
            return Observation(base.ENDED, exit_code=code, ended_at=datetime.now(timezone.utc))
        pid, start = handle["pid"]
        if host.is_alive(pid, start, boot):
            return Observation(base.RUNNING)  # supervisor gone but the program runs: its end is not knowable
        reason = REBOOT_REASON if boot != host.boot_id() else LOST_REASON
        return Observation(base.VANISHED, reason=reason)

    def released(self, handle: Handle) -> bool:
        """Whether the program has been let go (its pid no longer the shell waiting for "go")."""
        with self._lock:
            if handle.get("run") in self._released:
                return True
        try:
            cmdline = host.read_proc(f"/proc/{int(handle['pid'][0])}/cmdline")
        except (ValueError, TypeError):
            return True
        return cmdline is None or not launch.is_supervisor(cmdline)

    def usage(self, handles: Sequence[Handle]) -> list[Usage | None]:
        """CPU and memory of the jobs' process trees, all measured in one read of ``/proc``
        (``usage``)."""
        return self._meter.usage(handles)

    def wait(self, handle: Handle, timeout: float | None) -> bool:
        boot = handle.get("boot")
        for pid, start in (handle["supervisor"], handle["pid"]):
            if not host.is_alive(pid, start, boot):
                continue
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue
            try:
                if not host.is_alive(pid, start, boot):  # checked after opening: the fd is this process
                    continue
                return wait_pidfd(fd, timeout)
            finally:
                os.close(fd)
        return True

    def settle(self, handle: Handle, timeout: float) -> None:
        """Wait until the program has ended or is blocked waiting for something (as a long-running
        job soon is), at most ``timeout`` s: a program that cannot run is then seen ended at once."""
        deadline = time.monotonic() + timeout
        pid, start = handle["pid"]
        while host.is_alive(pid, start, handle.get("boot")):
            if launch.blocked_in_program(pid) or time.monotonic() > deadline:
                return
            time.sleep(SETTLE_STEP)  # a bounded look at a process just started, not a synchronisation
        self._await_exit_record(handle, deadline - time.monotonic())  # it ended: its exit file is next

    # -- ending ------------------------------------------------------------------------------------

    def cancel(self, handles: Sequence[Handle], grace: float) -> list[bool]:
        ended = end_all([functools.partial(_members_of, handle) for handle in handles], grace)
        for handle, gone in zip(handles, ended):
            if gone:
                self._await_exit_record(handle, max(grace, 1.0))
        return ended

    def _await_exit_record(self, handle: Handle, timeout: float) -> None:
        """Wait until the end of a job whose processes are gone is observable (its supervisor writes
        the exit file right after its program ends)."""
        deadline = time.monotonic() + timeout
        sup_pid, sup_start = handle["supervisor"]
        while read_exit_file(handle["exit"], sup_pid) is None and time.monotonic() < deadline:
            if not host.is_alive(sup_pid, sup_start, handle.get("boot")):
                return  # gone without writing it: observed as such
            time.sleep(SETTLE_STEP)

    def output(self, handle: Handle) -> tuple[str, str]:
        return handle["out"], handle["err"]

    # -- the rest of the interface -------------------------------------------------------------------

    def record_fields(self, handle: Handle) -> dict[str, Any]:
        return {
            "supervisor_pid": handle["supervisor"][0],
            "supervisor_start": handle["supervisor"][1],
            "last_pid": handle["pid"][0],
            "pid_start": handle["pid"][1],
            "boot_id": handle.get("boot"),
        }

    def handle_from_record(self, record: dict[str, Any]) -> Handle | None:
        if record.get("supervisor_pid") is None or not record.get("_exit_path"):
            return None
        return {
            "supervisor": [record["supervisor_pid"], record.get("supervisor_start")],
            "pid": [record.get("last_pid"), record.get("pid_start")],
            "boot": record.get("boot_id"),
            "run": record.get("run_id"),
            "exit": record["_exit_path"],
            "out": record["_out_path"],
            "err": record["_err_path"],
        }

    def watch(self, handle: Handle, on_end: Callable[[], None]) -> None:
        with self._lock:
            popen = self._children.get(handle["supervisor"][0])
        if self._reaper is None or popen is None:
            return

        def ended(code: int | None) -> None:
            on_end()
            if code is not None:  # reaped; its status is kept until its end is recorded (forget)
                with self._lock:
                    if popen.pid in self._recorded:
                        self._recorded.discard(popen.pid)
                        self._children.pop(popen.pid, None)

        self._reaper.watch(popen, handle["exit"], ended)

    def forget(self, handle: Handle) -> None:
        """Drop what this instance holds of a job whose end is recorded (its supervisor's exit status
        is kept until then: without an exit file, e.g. on a full disk, it is the only record)."""
        self._meter.forget(handle.get("run"))
        with self._lock:
            self._released.discard(handle.get("run"))
            child = self._children.get(handle["supervisor"][0])
            if child is None:
                return
            if child.returncode is not None:
                del self._children[child.pid]
            else:
                self._recorded.add(child.pid)  # dropped once the reaper has reaped it

    @property
    def reaper(self) -> Reaper | None:
        return self._reaper

    def close(self) -> None:
        if self._reaper is not None:
            self._reaper.close()


def _members_of(handle: Handle) -> list[Member]:
    """The live processes of a handle's run, but its supervisor (left alive to record the exit code)."""
    sup_pid, sup_start = handle["supervisor"]
    return find_members(
        handle.get("run"),
        roots=[(sup_pid, sup_start), tuple(handle["pid"])],
        group=sup_pid,
        boot=handle.get("boot"),
        spare=[sup_pid],
    )
