"""The supervisor both backends run: a ``/bin/sh`` script (``nodejobs-supervisor``) that lets a held
job's program go, writes its end to the exit file (``exitfile``) and ends what it left (``leftovers``).

Its arguments are built here once: the local backend runs the script with them, the Slurm backend puts
them in a batch script before the script's text.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence

from nodejobs.backends.base import JobSpec

SUPERVISOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nodejobs-supervisor")
LEFTOVER_GRACE = 3.0  # seconds a job's leftovers get between SIGTERM and SIGKILL when it ends
HELD_BY_CHANNEL = "-"  # HOLD argument: the program waits for "go" on the supervisor's stdin
# Files of the time-limit timer beside the exit file: the program started; the limit ran out.
TIMER_SUFFIXES = (".started", ".timeout")


def timer_marks(exit_path: str) -> list[str]:
    """The files by which a job's time-limit timer learns its program started, and says it ran out."""
    return [exit_path + suffix for suffix in TIMER_SUFFIXES]


def supervisor_args(spec: JobSpec, grace: float, hold: str, on_end: Sequence[str] | None) -> list[str]:
    """The supervisor's arguments for ``spec`` (after the script's path), in the order its header
    gives: ``ID EXIT_FILE RUN_ID GRACE KEEP PYTHON LIMIT ON_END HOLD PROGRAM [ARG...]``. ``hold`` is
    ``HELD_BY_CHANNEL`` or the path whose ``.go``/``.nogo`` file lets the program go or not; ``on_end``
    the command run once the job's end is recorded (None: nothing)."""
    limit = f"{spec.timeout:.3f}" if spec.timeout else "0"
    keep = "1" if spec.keep_leftovers else "0"
    return [spec.job_id, spec.exit_path, spec.run_id, str(grace), keep, sys.executable, limit,
            shlex.join(on_end) if on_end else "", hold, *spec.argv]  # fmt: skip
