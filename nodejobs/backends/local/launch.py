"""Starting a local job's supervisor, and telling its held payload from the user's program.

The supervisor runs detached (a session of its own) with the job's logs as stdout and stderr and one
end of a socket pair as stdin: on it the payload reports its pid and waits for "go". Until let go, the
payload is a subshell of the supervisor, so its command line is the supervisor's.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess

from nodejobs.backends import host
from nodejobs.backends.base import JobSpec
from nodejobs.backends.supervisor import SUPERVISOR

log = logging.getLogger(__name__)

# Signals a launcher may ignore (nohup, `cmd &`) that a job must not inherit ignored: a shell cannot
# undo an ignore it started with, so the supervisor is then started through env(1), which can.
_RESETTABLE = {"INT": signal.SIGINT, "QUIT": signal.SIGQUIT, "HUP": signal.SIGHUP, "TERM": signal.SIGTERM}


def supervisor_command(args: list[str]) -> list[str]:
    """The command that runs the supervisor with ``args``, every resettable signal at its default."""
    ignored = _ignored_signals()
    if ignored:
        return ["env", f"--default-signal={','.join(ignored)}", "/bin/sh", SUPERVISOR, *args]
    return ["nodejobs-supervisor", SUPERVISOR, *args]  # argv[0] names it in ps; /bin/sh runs it


def spawn(argv: list[str], spec: JobSpec, stdin: int) -> subprocess.Popen:
    """Start ``argv`` (a ``supervisor_command``) detached, in ``spec``'s directory and environment,
    writing to its logs (created, truncated); ``stdin`` is its end of the channel (a file descriptor)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    out_fd = os.open(spec.out_path, flags, 0o600)
    try:
        err_fd = os.open(spec.err_path, flags, 0o600)
        try:
            return subprocess.Popen(
                argv, executable=None if argv[0] == "env" else "/bin/sh", stdin=stdin, stdout=out_fd,
                stderr=err_fd, cwd=spec.cwd, env=spec.env, start_new_session=True,
            )  # fmt: skip
        finally:
            os.close(err_fd)
    finally:
        os.close(out_fd)


def read_pid(fd: int, timeout: float = 10.0) -> int | None:
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


def blocked_in_program(pid: int) -> bool:
    """True once ``pid`` runs the user's program (past the exec steps) and sleeps waiting on something."""
    found = host.proc_start(pid)
    if found is None or found[1] != "S":
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return False
    return not is_supervisor(cmdline)


def is_supervisor(cmdline: bytes) -> bool:
    """Whether a command line is the supervisor's (the payload runs it until it is let go)."""
    words = cmdline.split(b"\0")
    return len(words) > 1 and words[1] == os.fsencode(SUPERVISOR)


def _ignored_signals() -> list[str]:
    """The resettable signals this process ignores (read from the kernel: what a child inherits)."""
    with open("/proc/self/status") as f:
        mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigIgn:"))
    return [name for name, number in _RESETTABLE.items() if mask & (1 << (number - 1))]
