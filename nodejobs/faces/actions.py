"""What the two faces (the ``nodejobs`` CLI and the ``%job`` magics) share: one grammar, one wording.

The sub-command table (``COMMANDS``, in ``grammar``, re-exported here) builds the argparse parsers of
both faces; the functions below pick and summarise jobs, and hold the exit-status rules. Faces parse
and dispatch; everything they do to jobs goes through ``Jobs``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nodejobs.errors import FunctionError, JobNotFoundError, JobStillRunningError
from nodejobs.faces.grammar import (  # noqa: F401 -- the faces' grammar, re-exported: one module for the faces to use
    BOTH,
    CLEAN_CHOICES,
    CLI,
    COMMANDS,
    MAGIC,
    STATUS_CHOICES,
    BadUsage,
    Command,
    Option,
    add_options,
    age,
    commands,
    count,
    find_command,
    moment,
    names,
    normalise,
    overview,
    parse_env,
    seconds,
    stream,
)
from nodejobs.faces.queue_actions import queue_options, set_limits, sweep, tag  # noqa: F401 -- re-exported for the faces
from nodejobs.model.records import JobFilter, JobRecord, JobRecordDict, JobStatus
from nodejobs.report.wording import FAILED_TAIL_LINES, failure_tail, format_duration, summary  # noqa: F401 -- re-exported

# Exit statuses (the CLI's; the magics raise UsageError where these are non-zero for usage).
OK, FAILED, USAGE, TIMED_OUT = 0, 1, 2, 124


# -- jobs ----------------------------------------------------------------------------------------


def not_found(jobs: Any, job_id: str) -> JobNotFoundError:
    """The one "no such job" error; faces add only their hint (``with_hint``)."""
    return JobNotFoundError(f"no job {job_id!r} in {jobs.db_path}")


def with_hint(exc: Exception, hint: str) -> str:
    """An error's one-line message, with ``hint`` after a "no such job"."""
    return f"{exc} ({hint})" if isinstance(exc, JobNotFoundError) else str(exc)


def require(jobs: Any, job_id: str) -> JobRecord:
    """The up-to-date record of ``job_id``; ``JobNotFoundError`` if there is none."""
    record = jobs.get_status(job_id)
    if record is None:
        raise not_found(jobs, job_id)
    return record


def require_all(jobs: Any, job_ids: Sequence[str]) -> dict[str, JobRecord]:
    """The records of every id, in order; nothing is returned unless all exist."""
    return {job_id: require(jobs, job_id) for job_id in job_ids}


def select(
    jobs: Any, status: str | None = None, limit: int | None = None, since: str | None = None,
    tags: Sequence[str] = (),
) -> JobRecordDict:
    """The jobs with ``status`` (a status, ``"active"``, ``"ended"`` or None for all) started ``since``
    with every tag of ``tags`` (``K=V`` words), oldest first; with ``limit`` (not 0) only the newest
    ``limit`` of them."""
    wanted = dict(tag(pair) for pair in tags)
    criteria = JobFilter(tags=wanted) if wanted else None
    if not limit:
        return jobs.list_status(criteria, status=status, since=since)
    newest = jobs.list_status(criteria, status=status, since=since, order="newest", limit=limit)
    return JobRecordDict({i: newest[i] for i in reversed(newest)})


def listing_note(jobs: Any, shown: int, limit: int | None, status: str | None = None,
                 since: str | None = None) -> str:  # fmt: skip
    """``"showing the newest 100 of 12,345 jobs (...)"`` when a limit left some out; else ``""``."""
    if not limit or shown < limit:
        return ""
    total = jobs.count(status=status, since=since)
    if total <= shown:
        return ""
    return f"showing the newest {shown:,} of {total:,} jobs (--limit N for more, 0 for all)"


def clean(jobs: Any, older_than: str | None = None, status: str | None = None) -> str:
    """Delete ended jobs (``Jobs.clean``); the line saying which."""
    return removed_text(jobs.clean(older_than=older_than, status=status), ended=True)


def stop_many(jobs: Any, job_ids: Sequence[str], all_active: bool, grace: float | None) -> JobRecordDict:
    """Stop the ids (all checked first), or with ``all_active`` every active job; the final records."""
    if all_active and job_ids:
        raise BadUsage("give job IDs or --all, not both")
    if not all_active and not job_ids:
        raise BadUsage("give a job ID or --all")
    targets = jobs.ids(active=True) if all_active else list(require_all(jobs, job_ids))
    stopped = JobRecordDict()
    for job_id in targets:
        record = jobs.stop(job_id, grace)
        if record is not None:  # removed meanwhile: nothing to stop
            stopped[job_id] = record
    return stopped


def remove_many(jobs: Any, job_ids: Sequence[str]) -> list[str]:
    """Delete ended jobs; every id is checked (exists, has ended) before any is deleted."""
    for job_id, record in require_all(jobs, job_ids).items():
        if record.is_active:
            raise JobStillRunningError(f"job {job_id!r} is still {record.status}; stop it first")
    for job_id in job_ids:
        jobs.remove(job_id)
    return list(job_ids)


def removed_text(job_ids: Sequence[str], ended: bool = False) -> str:
    """``removed a, b`` (after rm) or ``removed 2 ended job(s): a, b`` (after clean)."""
    if not ended:
        return "removed " + ", ".join(job_ids)
    return f"removed {len(job_ids)} ended job(s)" + (": " + ", ".join(job_ids) if job_ids else "")


def rerun(jobs: Any, job_id: str, env_pairs: Sequence[str] = (), without_env: bool = False) -> JobRecord:
    """Run an ended job again, with ``-e`` values again or ``--without-env`` if it had any."""
    envs = parse_env(env_pairs)
    return jobs.rerun(job_id, envs=envs or None, without_env=without_env)


def result(jobs: Any, job_id: str, timeout: float | None, show_traceback: Callable[[str], Any]) -> Any:
    """A function job's return value (``Jobs.result``). If the function raised, its remote traceback
    goes to ``show_traceback`` and the one-line ``FunctionError`` is raised."""
    try:
        return jobs.result(job_id, timeout=timeout)
    except FunctionError as exc:
        show_traceback(exc.remote_traceback)
        raise exc.with_traceback(None) from None


# -- waiting and exit statuses -------------------------------------------------------------------


def exit_status(record: JobRecord) -> int:
    """A job that ended: 0 if finished, else its own exit code (1..255) when it has one, else 1."""
    if record.status == JobStatus.c_finished:
        return OK
    if record.exit_code is not None and 1 <= record.exit_code <= 255:
        return record.exit_code
    return FAILED


@dataclass
class Waited:
    """What ``wait_many`` saw: every job's last record, and whether the timeout ran out first."""

    records: dict[str, JobRecord]
    timed_out: bool
    any_ended: bool = False

    def ended(self) -> list[JobRecord]:
        return [r for r in self.records.values() if not r.is_active]

    def first_active(self) -> JobRecord | None:
        return next((r for r in self.records.values() if r.is_active), None)

    def exit_status(self) -> int:
        """With --any: the first ended job's; else that of the first job (in order) that did not finish."""
        if self.any_ended:
            ended = self.ended()
            return exit_status(ended[0]) if ended else TIMED_OUT
        for record in self.records.values():
            if record.is_active:
                return TIMED_OUT
            if record.status != JobStatus.c_finished:
                return exit_status(record)
        return OK


def wait_many(
    jobs: Any,
    job_ids: Sequence[str],
    timeout: float | None = None,
    any_ended: bool = False,
    tick: float | None = None,
    on_tick: Callable[[Waited], None] | None = None,
) -> Waited:
    """Wait until every job (or, ``any_ended``, one of them) has ended, or ``timeout`` s have passed.

    All ids are checked before waiting. ``on_tick`` is called at least every ``tick`` seconds.
    """
    waited = Waited(require_all(jobs, job_ids), timed_out=False, any_ended=any_ended)
    deadline = None if timeout is None or math.isinf(timeout) else time.monotonic() + timeout
    several = any_ended and len(waited.records) > 1
    while True:
        active = [i for i, r in waited.records.items() if r.is_active]
        if not active or (any_ended and len(active) < len(waited.records)):
            return waited
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            waited.timed_out = True
            return waited
        if on_tick is not None:
            on_tick(waited)
        steps = [s for s in (remaining, tick, 0.1 if several else None) if s is not None]
        with contextlib.suppress(TimeoutError):
            jobs.wait(active[0], timeout=min(steps) if steps else None)
        for job_id in active:
            record = jobs.get_status(job_id)
            if record is not None:
                waited.records[job_id] = record
