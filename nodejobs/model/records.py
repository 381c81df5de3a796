"""The job records: ``JobRecord``, ``JobFilter`` and job id rules (``listings``: a listing of records)."""

import html
import json
import os
import re
from datetime import datetime, timezone
from typing import Any

from nodejobs.errors import InvalidJobIdError
from nodejobs.model.schema import BaseData
from nodejobs.model.states import ACTIVE_STATUSES, JobStatus

__all__ = ["ACTIVE_STATUSES", "JobFilter", "JobRecord", "JobStatus", "validate_job_id"]

MAX_JOB_ID_LENGTH = 128
MAX_JOB_ID_BYTES = 200  # the id plus its longest file suffix must fit NAME_MAX (255 bytes)
_BAD_ID_CHARS = re.compile(r"[/\\\x00-\x1f\x7f-\x9f]")


def validate_job_id(job_id: Any) -> str:
    """Return ``job_id`` if it is safe as a file name, else raise ``InvalidJobIdError``."""
    if not isinstance(job_id, str) or not job_id:
        raise InvalidJobIdError(f"invalid job id {job_id!r}: must be a non-empty string")
    if len(job_id) > MAX_JOB_ID_LENGTH:
        raise InvalidJobIdError(f"invalid job id: longer than {MAX_JOB_ID_LENGTH} characters")
    try:
        size = len(job_id.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidJobIdError(f"invalid job id {job_id!r}: not encodable as UTF-8") from None
    if size > MAX_JOB_ID_BYTES:
        raise InvalidJobIdError(f"invalid job id: longer than {MAX_JOB_ID_BYTES} bytes in UTF-8")
    if _BAD_ID_CHARS.search(job_id):
        raise InvalidJobIdError(f"invalid job id {job_id!r}: no path separators or control characters")
    if job_id in (".", "..") or ".." in job_id or job_id.startswith(("-", ".")):
        raise InvalidJobIdError(f"invalid job id {job_id!r}: must not start with '-' or '.' or contain '..'")
    return job_id


class JobRecord(BaseData):
    """One job: what ran, where, on which backend (its opaque ``handle``), and how it ended.

    ``dirname`` is the job's own name for its files (its id, as in the original nodejobs). The local
    backend also keeps its process identity readable: ``last_pid`` (the payload), ``pid_start``,
    ``supervisor_pid``, ``supervisor_start`` and ``boot_id``.
    """

    Status = JobStatus

    self_id: str
    status: (JobStatus, None)
    last_update: (datetime, None)
    command: (str, None)
    shell: (bool, None)
    cwd: (str, None)
    dirname: (str, None)
    logdir: (str, None)
    logfile: (str, None)
    env_keys: (str, None)
    backend: (str, None)  # which backend runs it ("local"); each backend observes its own jobs
    handle: (str, None)  # the backend's opaque handle of this run, as JSON
    run_id: (str, None)  # random, new for every run of the id: tells runs apart, marks the run's processes
    last_pid: (int, None)
    pid_start: (int, None)
    supervisor_pid: (int, None)
    supervisor_start: (int, None)
    launcher_pid: (int, None)  # the process that called run(): a start it did not finish can be told apart
    launcher_start: (int, None)
    boot_id: (str, None)
    started_at: (datetime, None)
    ended_at: (datetime, None)
    exit_code: (int, None)
    reason: (str, None)
    cpu_time: (float, None)  # seconds of CPU (user + system) of the whole tree, recorded at the end
    max_rss: (int, None)  # bytes: the largest resident memory of the tree seen by a usage sample
    group: (str, None)  # its queue group; a group's limit caps how many of its jobs run at once
    after: (str, None)  # JSON list of the ids it waits for (it starts when every one finished)
    start_at: (datetime, None)  # not started before this time
    timeout: (float, None)  # seconds it may run before it is ended as timed_out
    tags: (str, None)  # JSON object of the user's labels, e.g. {"lr": 0.01}
    resources: (str, None)  # JSON object of what it asks a scheduler for, e.g. {"cpus": 4} (resources.py)
    slot: (int, None)  # 0..limit-1 in a limited group, unique among its running jobs (NODEJOBS_SLOT)
    submitted_at: (datetime, None)
    call: (str, None)  # a function job (Jobs.submit): its pickled call, run by python -m nodejobs.functions

    def __setitem__(self, key: str, value: Any) -> None:
        # Paths are made from these: they must not reach outside the log directory or hold NUL.
        if key in ("self_id", "logfile") and value is not None:
            validate_job_id(value)
        elif key == "logdir" and value is not None and not _is_clean_path(value):
            raise ValueError(f"JobRecord.logdir: {value!r} is not an absolute path without NUL")
        super().__setitem__(key, value)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def tag_values(self) -> dict[str, Any]:
        """The tags as a dict (empty when it has none, or when they are not a JSON object)."""
        value = loads(self.tags)
        return value if isinstance(value, dict) else {}

    @property
    def after_ids(self) -> list[str]:
        """The ids this job waits for (empty when none)."""
        return parse_ids(self.after)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (to now while the job is active)."""
        if self.started_at is None:
            return None
        end = self.ended_at or (datetime.now(timezone.utc) if self.is_active else self.last_update)
        if end is None:
            return None
        return (end - self.started_at).total_seconds()

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
            f"{html.escape(str(v))}</td></tr>"
            for k, v in self.items()
            if v is not None and k not in _HIDDEN_FIELDS
        )
        return f"<table class='nodejobs-record'>{rows}</table>"


def loads(text: str | None) -> Any:
    """``text`` as JSON, or None when it is empty or not JSON (a record written by hand)."""
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def parse_ids(text: str | None) -> list[str]:
    """The ids in a stored JSON list of ids (a record's ``after``); none if it is not one."""
    value = loads(text)
    return [i for i in value if isinstance(i, str)] if isinstance(value, list) else []


def _is_clean_path(path: Any) -> bool:
    return isinstance(path, str) and os.path.isabs(path) and "\x00" not in path


_HIDDEN_FIELDS = {
    "pid_start", "supervisor_start", "launcher_pid", "launcher_start", "boot_id", "handle", "run_id",
}  # fmt: skip


class JobFilter(BaseData):
    """Query criteria: any JobRecord field, matched for equality; ``tags`` is a dict and matches jobs
    having every one of those tags with that value. Unknown keys are an error."""

    _strict = True

    @classmethod
    def get_keys(cls) -> tuple[dict, dict]:
        return {}, {k: (dict if k == "tags" else t, None) for k, t in JobRecord._types.items()}
