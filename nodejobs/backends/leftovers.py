"""``python -m nodejobs.backends.leftovers PGID RUN_ID GRACE EXIT_CODE``: end what a local job left.

The supervisor runs this (by ``exec``, after writing the exit file) only when processes of the run
outlived its program: members of its process group ``PGID`` or carriers of its ``RUN_ID`` mark. They get
SIGTERM, and SIGKILL after ``GRACE`` seconds; then it exits with the job's ``EXIT_CODE``, as the
supervisor would have.
"""

from __future__ import annotations

import logging
import sys

from .local_procs import close_all, find_members, terminate

log = logging.getLogger(__name__)


def main(argv: list[str]) -> int:
    group, run_id, grace, exit_code = int(argv[0]), argv[1], float(argv[2]), int(argv[3])
    members = find_members(run_id, group=group)
    try:
        survivors = terminate(members, grace)
        if survivors:
            log.warning("run %s: %d process(es) survived SIGKILL", run_id, len(survivors))
    finally:
        close_all(members)
    return exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
