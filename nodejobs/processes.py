"""``Processes``: the original nodejobs' process-control face (``run``, ``find``, ``list``, ``stop``),
kept for code written against it; a thin layer over the lifecycle and the local backend."""

from __future__ import annotations

import builtins
from collections.abc import Sequence

import psutil

from nodejobs.backends import Backends
from nodejobs.backends.base import Backend
from nodejobs.backends.host import is_alive
from nodejobs.backends.local.backend import LOST_REASON, REBOOT_REASON, LocalBackend
from nodejobs.backends.local.reaper import Reaper
from nodejobs.engine.lifecycle import LAUNCHER_LOST_REASON, NOT_STARTED_REASON, Lifecycle
from nodejobs.model.records import JobRecord
from nodejobs.model.submission import Submission
from nodejobs.store.db import JobDB

__all__ = ["LAUNCHER_LOST_REASON", "LOST_REASON", "NOT_STARTED_REASON", "REBOOT_REASON", "Processes"]


class Processes:
    """Process control for one ``JobDB``: run, find, stop, list, and the reaper thread."""

    def __init__(
        self,
        job_db: JobDB,
        startup_window: float = 0.05,
        grace: float = 3.0,
        reaper: bool = True,
        backend: Backend | None = None,
        lifecycle: Lifecycle | None = None,
        backends: Backends | None = None,
    ) -> None:
        self.job_db = job_db
        self.grace = grace
        self.backends = backends or Backends(reaper=reaper, given=backend)
        self.lifecycle = lifecycle or Lifecycle(job_db, self.backends, startup_window)

    @property
    def reaper(self) -> Reaper | None:
        """The local backend's reaper thread, if it runs."""
        backend = self.backends("local")
        return backend.reaper if isinstance(backend, LocalBackend) else None

    def run(
        self,
        command: str | Sequence[str],
        job_id: str,
        envs: dict[str, str] | None = None,
        cwd: str | None = None,
        logdir: str | None = None,
        logfile: str | None = None,
        *,
        replace: bool = True,
    ) -> JobRecord:
        """Start ``command`` as job ``job_id`` (the id must be free or its job ended); return the record."""
        submission = Submission.plain(envs, cwd, logdir, logfile)
        return self.lifecycle.run(command, job_id, submission, replace=replace)

    def refresh(self, record: JobRecord | None) -> JobRecord | None:
        """Bring an active record up to date; ended records are returned as is."""
        return self.lifecycle.refresh(record)

    def refresh_active(self) -> None:
        """Fold the end of every job recorded as active whose run has ended."""
        self.lifecycle.refresh_active()

    def wait(self, record: JobRecord, timeout: float | None) -> bool:
        """Wait for the job's run to end; True if it has."""
        return self.lifecycle.wait(record, timeout)

    def find(self, job_id: str) -> psutil.Process | None:
        """The running payload process of ``job_id``, or None."""
        record = self.refresh(self.job_db.get(job_id))
        if record is None or not record.is_active or record.backend not in (None, "local"):
            return None
        if not is_alive(record.last_pid, record.pid_start, record.boot_id):
            return None
        proc = psutil.Process(record.last_pid)
        proc.job_id = job_id  # type: ignore[attr-defined]  # 0.6.2 tags the psutil process with its id
        return proc

    def list(self) -> builtins.list[psutil.Process]:
        """Running payload processes of active jobs, each with a ``job_id`` attribute."""
        found = []
        for record in self.job_db.list_active():
            proc = self.find(record.self_id)
            if proc is not None:
                found.append(proc)
        return found

    def stop(self, job_id: str, grace: float | None = None) -> JobRecord | None:
        """Stop the job's whole tree (SIGTERM, SIGKILL after ``grace`` s); return the final record."""
        return self.lifecycle.stop(job_id, self.grace if grace is None else grace)

    def close(self) -> None:
        """Stop the reaper thread."""
        self.backends.close()
