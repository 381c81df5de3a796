"""The backend-neutral life of a job: claim its id, submit it held, record the handle, release it; fold
observed ends into the database; stop it.

The lifecycle decides every status (through ``states``) and holds of each run only the backend's
opaque handle; what a handle means is the backend's business (``backends``). ``Lifecycle`` is the
engine's one entry point; the work is done in ``start``, ``observe`` and ``stop``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from nodejobs.backends.base import Usage
from nodejobs.engine import observe, start, stop
from nodejobs.engine.context import (
    LAUNCHER_LOST_REASON,
    NOT_STARTED_REASON,
    QUEUED_STOP_REASON,
    START_TIMEOUT,
    SURVIVED_REASON,
    EngineContext,
    Launch,
    now,
)
from nodejobs.model.records import JobRecord
from nodejobs.model.submission import Submission

__all__ = [
    "LAUNCHER_LOST_REASON",
    "NOT_STARTED_REASON",
    "QUEUED_STOP_REASON",
    "START_TIMEOUT",
    "SURVIVED_REASON",
    "Launch",
    "Lifecycle",
    "now",
]


class Lifecycle(EngineContext):
    """Starts, observes and stops the jobs of one ``JobDB`` through their backends."""

    # -- starting ----------------------------------------------------------------------------------

    def run(
        self, command: str | Sequence[str], job_id: str, submission: Submission, *, replace: bool = True
    ) -> JobRecord:
        """Start ``command`` (a list runs directly, a string through ``/bin/sh -c``) as ``job_id``."""
        record, launch = self.prepare(command, job_id, submission)
        return self.start(record, launch, replace)

    def prepare(
        self, command: str | Sequence[str], job_id: str, submission: Submission
    ) -> tuple[JobRecord, Launch]:
        """The ``starting`` record and the launch of a new run (checked, nothing written)."""
        return start.prepare(self, command, job_id, submission)

    def new_record(self, job_id: str, backend: str, **fields: Any) -> JobRecord:
        """A ``starting`` record of a new run of ``job_id``, made by this process."""
        return start.new_record(job_id, backend=backend, **fields)

    def start(self, record: JobRecord, launch: Launch, replace: bool = True) -> JobRecord:
        """Claim ``record`` (a ``starting`` record) and start its run; return the record as it is then.
        Raises ``JobExistsError`` if a live job holds the id (with ``replace=False``: any job)."""
        return start.start(self, record, launch, replace)

    def start_claimed(self, record: JobRecord, launch: Launch, settle: bool = True) -> JobRecord:
        """Start the run of ``record``, already stored as ``starting`` by this process (e.g. the queue);
        ``settle``: wait up to the startup window for an immediate failure (the queue does not)."""
        return start.start_many(self, [(record, launch)], settle)[0]

    def run_many(self, items: Sequence[tuple[str | Sequence[str], str, Submission]]) -> list[JobRecord]:
        """``run`` of many ``(command, job_id, submission)`` at once (``start_many``); all are checked
        before any is claimed. Raises ``JobExistsError`` if a live job holds one of the ids."""
        prepared = [self.prepare(command, job_id, submission) for command, job_id, submission in items]
        return start.start_all(self, prepared)

    def start_many(self, pairs: Sequence[tuple[JobRecord, Launch]], settle: bool = False) -> list[JobRecord]:
        """Start the runs of claimed ``starting`` records of one backend together (e.g. one Slurm array)."""
        return start.start_many(self, pairs, settle)

    def fail_start(self, record: JobRecord, reason: str) -> JobRecord:
        """Record that the job could not start; its logs are replaced by the reason (best effort)."""
        return start.fail_start(self, record, reason)

    # -- observing ---------------------------------------------------------------------------------

    def refresh(self, record: JobRecord | None) -> JobRecord | None:
        """Bring an active record up to date with its backend; ended records are returned as is."""
        return observe.refresh(self, record)

    def refresh_many(self, records: Iterable[JobRecord]) -> list[JobRecord]:
        """``refresh`` of many records, observing each backend's jobs in one call."""
        return observe.refresh_many(self, records)

    def refresh_active(self) -> list[JobRecord]:
        """Fold the end of every job recorded as active whose run has ended; the records after it."""
        return observe.refresh_many(self, self.job_db.list_active())

    def usage(self, records: Iterable[JobRecord]) -> dict[str, Usage]:
        """CPU and memory now of the running ones of ``records``, by id; raises recorded peaks."""
        return observe.usage(self, records)

    def wait(self, record: JobRecord, timeout: float | None) -> bool:
        """Block until the record's run ends or ``timeout`` s pass; True if it ended."""
        return observe.wait(self, record, timeout)

    # -- stopping ----------------------------------------------------------------------------------

    def stop(self, job_id: str, grace: float) -> JobRecord | None:
        """End a job and everything it started (SIGTERM-like first, forcibly after ``grace`` s, as its
        backend escalates); return its final record. An ended job's leftovers are ended too."""
        return stop.stop(self, job_id, grace)
