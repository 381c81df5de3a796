"""``python -m nodejobs.backends.supervisor.leftovers PGID RUN_ID GRACE EXIT_CODE [SPARE]``: end a run's
processes on this machine: the members of its process group ``PGID`` and the carriers of its ``RUN_ID``
mark (but this process and ``SPARE``) get SIGTERM, and SIGKILL after ``GRACE`` seconds; then it exits
with ``EXIT_CODE``.

The supervisor runs this (by ``exec``, after writing the exit file) only when processes of the run
outlived its program, exiting with the job's code as the supervisor would have; its time-limit timer
runs it to end a job that ran out of time, sparing the supervisor, which records the end. A held job's
watchdog (Slurm) runs it when the job is sent SIGTERM, and when the supervisor is gone without having
ended the run (SIGKILLed): whatever the cluster's process tracking, nothing of the run outlives it.
"""

from __future__ import annotations

import functools
import logging
import sys

from nodejobs.backends.local.procs import end_all, find_members

log = logging.getLogger(__name__)


def main(argv: list[str]) -> int:
    group, run_id, grace, exit_code = int(argv[0]), argv[1], float(argv[2]), int(argv[3])
    spare = [int(argv[4])] if len(argv) > 4 else []
    finder = functools.partial(find_members, run_id, group=group, spare=spare)
    if not end_all([finder], grace)[0]:
        log.warning("run %s: process(es) survived SIGKILL", run_id)
    return exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
