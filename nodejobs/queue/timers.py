"""The timer of delayed starts: a detached ``sleep`` that runs the queue step at the earliest delayed
start of a database's queued jobs (no Python process waits meanwhile). One per database, named in
``<db_path>/timer``; it wakes ``PREWARM`` s early, and the queue step it becomes waits out the rest.
"""

from __future__ import annotations

import os
import subprocess

from nodejobs.backends import host
from nodejobs.backends.base import RUN_MARK
from nodejobs.engine.lifecycle import now
from nodejobs.store.files import write_private

PREWARM = 1.0  # a timer wakes this early; the dispatcher it becomes waits out the rest (Python starts slowly)
TIMER = "timer"  # <db_path>/timer names the sleep that dispatches at the next delayed start


def ensure_timer(db_path: str, when: float, argv: list[str]) -> None:
    """Make sure a detached ``sleep`` runs ``argv`` at ``when`` (a timestamp): one timer per database,
    recorded in ``<db_path>/timer`` as ``pid start-ticks boot when``; a new one if it is gone or late."""
    path = os.path.join(db_path, TIMER)
    try:
        with open(path) as f:
            pid, start, boot, at = f.read().split()
        if float(at) <= when + 0.001 and host.is_alive(int(pid), int(start), boot):
            return
    except (OSError, ValueError):
        pass
    new = start_later(when - now().timestamp() - PREWARM, argv)
    found = host.proc_start(new)
    write_private(path, f"{new} {found[0] if found else 0} {host.boot_id()} {when}\n")


def start_later(delay: float, argv: list[str]) -> int:
    """Run ``argv`` after ``delay`` seconds from a detached ``sleep`` (no Python process waits meanwhile);
    the pid of the shell that sleeps, then becomes ``argv``."""
    env = {k: v for k, v in os.environ.items() if k != RUN_MARK}
    popen = subprocess.Popen(
        ["/bin/sh", "-c", 'sleep "$0"; exec "$@"', f"{max(delay, 0):.3f}", *argv], env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    popen.returncode = 0  # not ours to wait for: no ResourceWarning when it outlives this object
    return popen.pid
