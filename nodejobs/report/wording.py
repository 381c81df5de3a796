"""One wording of jobs on every face: durations, one-line summaries, the tail of a failure."""

from __future__ import annotations

from typing import Protocol

from nodejobs.errors import NodeJobsError
from nodejobs.model.options import DEFAULT_GROUP
from nodejobs.model.records import JobRecord, JobStatus

FAILED_TAIL_LINES = 10
_FAILED = (JobStatus.c_failed, JobStatus.c_failed_start, JobStatus.c_timed_out)


class Tails(Protocol):
    """What ``failure_tail`` reads a log with (``Jobs`` is one; this layer sits below it)."""

    def tail(self, job_id: str, n: int = 10, stream: str = "out") -> str: ...


def format_duration(seconds: float | None) -> str:
    """``4.2 s``, ``3m 05s``, ``2h 07m``; empty for None."""
    if seconds is None:
        return ""
    seconds = max(seconds, 0.0)  # an exit file's mtime may be a tick before the recorded start
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def summary(record: JobRecord) -> str:
    """One line about a job: ``train-1 finished (exit 0) after 4.2 s`` or ``train-1 running (pid 41)``."""
    if record.status == JobStatus.c_queued:
        group = record.group or DEFAULT_GROUP
        return f"{record.self_id} queued in group {group}: {record.reason or 'waiting'}"
    if record.status == JobStatus.c_pending:
        return f"{record.self_id} pending in {record.backend}: {record.reason or 'waiting'}"
    if record.is_active:
        return f"{record.self_id} {record.status} (pid {record.last_pid})"
    text = f"{record.self_id} {record.status}"
    if record.exit_code is not None:
        text += f" (exit {record.exit_code})"
    if record.duration is not None:
        text += f" after {format_duration(record.duration)}"
    if record.reason:
        text += f": {record.reason}"
    return text


def failure_tail(jobs: Tails, record: JobRecord, lines: int = FAILED_TAIL_LINES) -> str:
    """For a failed job, the last lines of its stderr under a title line; else ``""``."""
    if record.status not in _FAILED:
        return ""
    try:
        text = jobs.tail(record.self_id, lines, "err")
    except NodeJobsError:  # removed meanwhile
        return ""
    if not text.strip():
        return ""
    return f"[stderr of {record.self_id}, last lines]\n" + (text if text.endswith("\n") else text + "\n")
