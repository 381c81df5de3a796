"""``python -m nodejobs.queue DB_PATH``: move the queue of one database, then exit (the queue step).

Run detached by the supervisor of every job that ends while jobs are queued, and by the ``sleep`` of a
delayed job at its time. It folds the ends of jobs, starts what may start, and keeps going only while
the jobs it just started end at once (a drain of short jobs costs one Python start, not one per job);
meanwhile ``<db>/draining`` holds its pid so ending jobs do not start more dispatchers. A delayed
start's timer wakes it ``PREWARM`` s early, so the job starts on time however slowly Python starts.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from nodejobs.engine.lifecycle import Lifecycle
from nodejobs.model.records import JobRecord
from nodejobs.queue.timers import PREWARM
from nodejobs.store.files import remove_if_exists, write_private

log = logging.getLogger(__name__)

DRAIN_WINDOW = 0.05  # seconds to wait for the jobs just started to end before exiting


def run(argv: list[str]) -> int:
    """The queue step's command line: one argument, the database directory; the exit status."""
    logging.basicConfig(level=logging.WARNING, format="nodejobs.queue: %(message)s")
    if len(argv) != 1:
        log.error("usage: python -m nodejobs.queue DB_PATH")
        return 2
    return step(argv[0])


def step(db_path: str) -> int:
    """Fold ends and start what may start in ``db_path``, draining while started jobs end at once."""
    from nodejobs.jobs import Jobs  # the facade is above the queue: imported by the step that runs it

    with Jobs(db_path, reaper=False, startup_window=0.0) as jobs:
        queue = jobs.queue
        marked = False
        try:
            while True:
                started = queue.dispatch()
                if not started or not _any_ends_soon(jobs.lifecycle, started):
                    break
                if not marked:
                    write_private(queue.draining, f"{os.getpid()}\n")
                    marked = True
        finally:
            if marked:
                remove_if_exists(queue.draining)
                queue.dispatch()  # a job that ended while we were marked may have skipped its dispatch
        soon = queue.next_start()
        if soon is not None and 0 < soon <= PREWARM:  # woken early by a delayed start's timer: wait it out
            time.sleep(soon)
            queue.dispatch()
    return 0


def _any_ends_soon(lifecycle: Lifecycle, started: list[JobRecord]) -> bool:
    """Whether any of the jobs just started ends within the drain window."""
    deadline = time.monotonic() + DRAIN_WINDOW
    for record in started:
        if not record.is_active:
            return True
    for record in started:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        if lifecycle.wait(record, remaining):
            return True
    return False


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
