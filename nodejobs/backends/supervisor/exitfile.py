"""The exit file a supervisor writes when its job's program ends, as the backends read it.

Line 1 is ``CODE WRITER STARTED [timeout]``: the exit code (shell convention), the supervisor's pid,
0 if the program was never let go, and ``timeout`` if the time-limit timer ended it. Lines 2-3 are the
output of the shell's ``times``: the shell's own user and system time, then its children's — the job's
CPU time, its whole tree (what was reaped). The file's modification time is when the job ended.
"""

from __future__ import annotations

import logging
import os
import re
from datetime import datetime, timezone

from nodejobs.backends.base import ENDED, Observation

log = logging.getLogger(__name__)

_TIMES = re.compile(rb"(\d+)m(\d+(?:[.,]\d+)?)s")


def read_exit_file(path: str, supervisor_pid: int | None = None) -> Observation | None:
    """The end a supervisor (``supervisor_pid``, if given) wrote to ``path``, or None if not yet."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        lines = os.read(fd, 65536).split(b"\n")
        ended = os.fstat(fd).st_mtime
    finally:
        os.close(fd)
    words = lines[0].split()
    try:
        code, writer = int(words[0]), int(words[1]) if len(words) > 1 else None
        started = words[2] != b"0" if len(words) > 2 else True
        timed_out = len(words) > 3 and words[3] == b"timeout"
    except (IndexError, ValueError):
        if words:
            log.warning("ignoring unreadable exit file %s: %r", path, lines[0][:100])
        return None
    if supervisor_pid is not None and writer is not None and writer != supervisor_pid:
        return None  # written by the supervisor of another run of this id
    ended_at = datetime.fromtimestamp(ended, timezone.utc)
    return Observation(ENDED, exit_code=code, ended_at=ended_at, started=started,
                       cpu_time=_cpu_time(lines), timed_out=timed_out)  # fmt: skip


def _cpu_time(lines: list[bytes]) -> float | None:
    """Children's user + system seconds from the ``times`` lines of an exit file, or None."""
    if len(lines) < 3:
        return None
    found = _TIMES.findall(lines[2])
    if len(found) != 2:
        return None
    return round(sum(int(minutes) * 60 + float(secs.replace(b",", b".")) for minutes, secs in found), 3)
