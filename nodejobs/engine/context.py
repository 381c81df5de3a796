"""What the parts of the engine share: the database, the backends, the starts given up, and the
reasons the engine records."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, cast

from nodejobs.backends.base import Backend, Handle
from nodejobs.model.records import JobRecord
from nodejobs.store.db import JobDB

LAUNCHER_LOST_REASON = "the process starting the job ended before the job started"
NOT_STARTED_REASON = "stopped before it started"
SURVIVED_REASON = "the job survived SIGTERM and SIGKILL"
QUEUED_STOP_REASON = "stopped while queued"
START_TIMEOUT = 300.0  # a start not completed in this time is given up (its launcher hung or failed)


def now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Launch:
    """What to start for a claimed record: the program, its environment and backend options."""

    argv: list[str]
    env: dict[str, str]
    keep_leftovers: bool = False
    options: dict[str, Any] | None = None


class EngineContext:
    """The jobs of one ``JobDB`` and the backends that run them, as starting, observing and stopping
    share them."""

    def __init__(
        self,
        job_db: JobDB,
        backend_for: Callable[[str], Backend],
        startup_window: float = 0.05,
        on_end: list[str] | None = None,
    ) -> None:
        self.job_db = job_db
        self.backend_for = backend_for  # backend name -> the instance observing that backend's jobs
        self.startup_window = startup_window
        self.on_end = on_end  # a command every job's backend runs after the job ended (the queue's)
        # run id -> why: starts this process gave up but could not record (e.g. a full disk); their
        # records say "starting" until a refresh can write the end, which needs no waiting for them
        self._abandoned: dict[str, str] = {}

    def backend_of(self, record: JobRecord) -> Backend:
        """The backend that runs ``record``'s job."""
        return self.backend_for(record.backend or "local")

    def handle(self, record: JobRecord) -> Handle | None:
        """The backend handle of a record's run (made from older records' fields where needed)."""
        if record.handle:
            return json.loads(record.handle)
        paths = self.job_db.paths(record)
        legacy = {**record, "_exit_path": paths.exit, "_out_path": paths.out, "_err_path": paths.err}
        return self.backend_of(record).handle_from_record(legacy)

    def move(self, record: JobRecord, old: str, new: str, fields: dict | None = None) -> bool:
        """Move ``record``'s run from status ``old`` to ``new`` with ``fields`` (compare-and-set)."""
        return self.job_db.update_run(record.self_id, record.run_id, old, fields or {}, new)

    def reread(self, job_id: str) -> JobRecord:
        """The stored record of a job the engine holds (an active one, which cannot have been removed)."""
        return cast(JobRecord, self.job_db.get(job_id))
