"""Which of a submission's queue features its backend takes over natively (Slurm: ``after`` as
``--dependency=afterok``, ``at`` as ``--begin``), and which wait in nodejobs' own queue.

Group limits always stay with nodejobs' dispatcher: they change at run time (``set_limit``), span
separate submissions, and Slurm has no per-user group limit short of one array or an administrator's
QOS. Dependencies are decided from nodejobs' own records first: a finished one is dropped, and only
a dependency on a job still active on the same backend is handed over (Slurm silently drops an
``afterok`` on a job it has forgotten, and runs the dependent anyway); anything else waits in
nodejobs' queue, which also ends the job at once if a dependency did not finish.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nodejobs.backends.base import Backend
from nodejobs.engine.lifecycle import Lifecycle
from nodejobs.errors import InvalidInputError
from nodejobs.model.states import JobStatus
from nodejobs.store.db import JobDB

S = JobStatus
HANDED = (S.c_pending, S.c_running)  # a dependency in these states can be handed to its backend


def plan(
    job_db: JobDB, lifecycle: Lifecycle, backend: Backend, deps: list[str], start_at: datetime | None,
    limited: bool,
) -> tuple[bool, dict[str, Any]]:  # fmt: skip
    """``(queued, options)``: whether the job waits in nodejobs' queue, else the backend options that
    carry its dependencies (``after``: the backend's references) and start time (``begin``)."""
    if limited:
        return True, {}
    caps = backend.capabilities
    options: dict[str, Any] = {}
    if start_at is not None:
        if not caps.delayed_start:
            return True, {}
        options["begin"] = start_at.timestamp()
    refs = []
    for dep in deps:
        if not caps.dependencies:
            return True, {}
        record = lifecycle.refresh(job_db.get(dep))
        if record is None:
            raise InvalidInputError(f"unknown dependency {dep!r} (no job with that id)")
        if record.status == S.c_finished:
            continue
        same = record.status in HANDED and record.backend == backend.name
        handle = lifecycle.handle(record) if same else None
        ref = backend.dependency_ref(handle) if handle is not None else None
        if ref is None:
            return True, {}  # nodejobs' queue waits for it (or ends this job if it did not finish)
        refs.append(ref)
    if refs:
        options["after"] = refs
    return False, options
