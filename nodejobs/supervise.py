"""Local process control: launch a job under a tiny shell supervisor, read its exit, signal its tree.

Each job runs as::

    sh (supervisor, session and process-group leader)  ->  payload (the user's command)

The supervisor is ``/bin/sh`` (dash on Debian: well under 1 MB), not a Python process. It waits for
the payload, writes its exit code to ``<logfile>.exit`` and exits with the same code. Because the
supervisor is a detached process of its own, the exit code is recorded even if the Python process
that launched the job is gone; whoever reads the database next folds it into the record.

A process is identified by pid *and* start time (clock ticks since boot, from ``/proc``) *and* the
boot id, so a recycled pid is never mistaken for a job.

``LocalBackend`` is the whole interface a backend implements (launch, exit status, alive?, signal,
wait); a cluster backend would implement the same methods.
"""

from __future__ import annotations

import logging
import math
import os
import select
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import psutil

from .logs import remove_if_exists

log = logging.getLogger(__name__)

# $1: exit file; the rest: the payload argv. The supervisor's stdin is a socket to the launcher: the
# inner sh reports its pid there (as fd 3) and waits for "go", sent once the database knows both
# processes; then it becomes the payload (exec keeps the pid) with stdin from /dev/null. If the launcher
# dies first (EOF), the payload never starts: no job runs that no record tracks. The exit file holds the
# exit code and the supervisor's pid, so a late write by another run's supervisor is not mistaken for
# this run's. Trapped (not ignored) signals are reset to default in the payload.
SUPERVISOR_SCRIPT = r"""
trap : TERM INT HUP QUIT
exit_file=$1; shift
/bin/sh -c 'echo $$ >&3; IFS= read -r go <&3 || go=; exec 3>&-
[ "$go" = go ] || { echo "nodejobs: not started: the process starting the job ended first" >&2; exit 125; }
exec "$@"' nodejobs "$@" 3>&0 0</dev/null
rc=$?
umask 077
echo "$rc $$" > "$exit_file"
exit "$rc"
"""


@dataclass
class Launched:
    """What a launch returns: the supervisor's and the payload's identities, and the go-ahead channel."""

    supervisor_pid: int
    supervisor_start: int
    pid: int | None
    pid_start: int | None
    popen: subprocess.Popen
    channel: socket.socket | None = None

    def release(self, start: bool) -> None:
        """Let the payload start (``start``), or make the supervisor exit without starting it."""
        if self.channel is None:
            return
        try:
            if start:
                self.channel.sendall(b"go\n")
        except OSError:
            pass  # the supervisor is gone already; its end is folded like any other
        finally:
            self.channel.close()
            self.channel = None


def _read_boot_id() -> str:
    with open("/proc/sys/kernel/random/boot_id") as f:
        return f.read().strip()


_BOOT_ID = _read_boot_id()


def boot_id() -> str:
    """This boot's id; records from an earlier boot cannot have live processes."""
    return _BOOT_ID


def proc_start(pid: int) -> tuple[int, str] | None:
    """``(start ticks since boot, state letter)`` of ``pid``, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[19]), fields[0].decode()


def is_alive(pid: int | None, start: int | None, boot: str | None) -> bool:
    """True if ``pid`` is running, is the process that started at ``start``, and is not a zombie."""
    if pid is None or start is None or boot != _BOOT_ID:
        return False
    found = proc_start(pid)
    return found is not None and found[0] == start and found[1] != "Z"


def open_pidfd(pid: int, start: int) -> int | None:
    """A pidfd for ``pid`` if it is still the process that started at ``start``."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None
    found = proc_start(pid)
    if found is None or found[0] != start:
        os.close(fd)
        return None
    return fd


def wait_pidfd(fd: int, timeout: float | None) -> bool:
    """Block until the process behind ``fd`` exits or ``timeout`` passes; True if it exited."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))


class LocalBackend:
    """Runs jobs as local process groups supervised by ``/bin/sh``."""

    def launch(
        self, argv: list[str], env: dict[str, str], cwd: str, out_path: str, err_path: str, exit_path: str
    ) -> Launched:
        """Start ``argv`` detached, output to the two files; raise OSError if it cannot start.

        The payload waits until the caller calls ``release`` on the result.
        """
        for path in (exit_path, out_path, err_path):
            remove_if_exists(path)
        channel, supervisor_end = socket.socketpair()
        write_fd = supervisor_end.fileno()
        try:
            out_fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
            try:
                err_fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
                try:
                    popen = subprocess.Popen(
                        ["/bin/sh", "-c", SUPERVISOR_SCRIPT, "nodejobs-supervisor", exit_path, *argv],
                        stdin=write_fd,
                        stdout=out_fd,
                        stderr=err_fd,
                        cwd=cwd,
                        env=env,
                        start_new_session=True,
                    )
                finally:
                    os.close(err_fd)
            finally:
                os.close(out_fd)
        except BaseException:
            channel.close()
            raise
        finally:
            supervisor_end.close()
        try:
            pid = _read_pid(channel.fileno())
        except BaseException:
            channel.close()  # the supervisor sees EOF and exits without starting the payload
            raise
        sup = proc_start(popen.pid)
        started = proc_start(pid) if pid else None
        return Launched(
            supervisor_pid=popen.pid,
            supervisor_start=sup[0] if sup else 0,
            pid=pid,
            pid_start=started[0] if started else None,
            popen=popen,
            channel=channel,
        )

    def exit_status(self, exit_path: str, supervisor_pid: int | None = None) -> tuple[int, datetime] | None:
        """``(exit code, end time)`` once the supervisor (``supervisor_pid``, if given) has written it."""
        try:
            with open(exit_path, "rb") as f:
                words = f.read().split()
                ended = os.fstat(f.fileno()).st_mtime
        except FileNotFoundError:
            return None
        try:
            code, writer = int(words[0]), int(words[1]) if len(words) > 1 else None
        except (IndexError, ValueError):
            if words:
                log.warning("ignoring unreadable exit file %s: %r", exit_path, b" ".join(words)[:100])
            return None
        if supervisor_pid is not None and writer is not None and writer != supervisor_pid:
            return None  # written by the supervisor of another run of this id
        return code, datetime.fromtimestamp(ended, timezone.utc)

    def alive(self, pid: int | None, start: int | None, boot: str | None) -> bool:
        return is_alive(pid, start, boot)

    def released(self, pid: int | None) -> bool:
        """Whether the payload ``pid`` has been let go (it is no longer the shell waiting for "go")."""
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return not f.read().startswith(_WAITING_CMDLINE)
        except (OSError, ValueError):
            return True

    def identity(self) -> tuple[int, int | None]:
        """``(pid, start ticks)`` of this process, as launcher of the jobs it starts."""
        found = proc_start(os.getpid())
        return os.getpid(), found[0] if found else None

    def wait(self, pid: int | None, start: int | None, boot: str | None, timeout: float | None) -> bool:
        """Wait until the identified process exits; True if it has (or was already gone)."""
        if not is_alive(pid, start, boot):
            return True
        fd = open_pidfd(pid, start)  # type: ignore[arg-type]
        if fd is None:
            return True
        try:
            return wait_pidfd(fd, timeout)
        finally:
            os.close(fd)

    def tree(self, pid: int | None, start: int | None, boot: str | None) -> list[psutil.Process]:
        """The identified process and all its descendants (empty if it is gone)."""
        if not is_alive(pid, start, boot):
            return []
        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def signal_job(
        self,
        supervisor: tuple[int | None, int | None],
        payload: tuple[int | None, int | None],
        boot: str | None,
        sig: int,
        spare_supervisor: bool,
    ) -> int:
        """Send ``sig`` to the job's process group and every process of its tree; return how many.

        Only processes proven to be the job's (pid + start time, or their descendants) are signalled.
        With ``spare_supervisor`` the supervisor itself is left alive so it can record the exit code.
        """
        members = self.tree(*supervisor, boot) or self.tree(*payload, boot)
        if not members:
            return 0
        sup_pid = supervisor[0]
        group = _pgid_of(members[0].pid)
        sent = 0
        if not spare_supervisor and group is not None and group == sup_pid:
            sent += _killpg(group, sig)
        for proc in members:
            if spare_supervisor and proc.pid == sup_pid:
                continue
            sent += _kill(proc, sig)
        return sent

    def kill(self, procs: list[psutil.Process], sig: int) -> int:
        """Send ``sig`` to each process that is still the one listed (psutil checks pid reuse)."""
        return sum(_kill(proc, sig) for proc in procs)

    def wait_gone(self, procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
        """Wait up to ``timeout`` s until every listed process has exited; return those still running."""
        fds: dict[int, psutil.Process] = {}
        try:
            for proc in procs:
                try:
                    fd = os.pidfd_open(proc.pid)
                except OSError:
                    continue
                fds[fd] = proc
                try:
                    same = proc.is_running()  # checked after opening: the fd is this very process
                except psutil.Error:
                    same = False
                if not same:
                    del fds[fd]
                    os.close(fd)
            poller = select.poll()
            for fd in fds:
                poller.register(fd, select.POLLIN)
            deadline = time.monotonic() + timeout
            while fds:
                remaining = max(0.0, deadline - time.monotonic())
                for fd, _ in poller.poll(math.ceil(remaining * 1000)):  # polled once even at 0
                    poller.unregister(fd)
                    del fds[fd]
                    os.close(fd)
                if remaining == 0:
                    break
            return list(fds.values())
        finally:
            for fd in fds:
                os.close(fd)


_WAITING_CMDLINE = b"/bin/sh\0-c\0echo $$ >&3; IFS= read -r go <&3"


def _read_pid(fd: int, timeout: float = 10.0) -> int | None:
    """Read the payload pid the supervisor writes on its channel (None if it never does)."""
    data = b""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    while not data.endswith(b"\n"):
        if not poller.poll(int(timeout * 1000)):
            log.warning("supervisor did not report the payload pid within %.0f s", timeout)
            return None
        chunk = os.read(fd, 64)
        if not chunk:
            return None
        data += chunk
    return int(data)


def _pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _killpg(pgid: int, sig: int) -> int:
    try:
        os.killpg(pgid, sig)
        return 1
    except ProcessLookupError:
        return 0


def _kill(proc: psutil.Process, sig: int) -> int:
    try:
        proc.send_signal(sig)  # psutil checks the process is still the one it saw (pid reuse)
        return 1
    except psutil.Error:
        return 0
