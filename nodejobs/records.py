"""The job records: ``JobRecord``, ``JobFilter``, ``JobRecordDict`` and job id rules."""

import html
import os
import re
from datetime import datetime, timezone
from typing import Any

from .errors import InvalidJobIdError
from .schema import BaseData, Choices

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


class JobStatus(Choices):
    c_starting = "starting"
    c_running = "running"
    c_stopping = "stopping"
    c_stopped = "stopped"
    c_finished = "finished"
    c_failed = "failed"
    c_failed_start = "failed_start"
    c_failed_stop = "failed_stop"


ACTIVE_STATUSES = (JobStatus.c_starting, JobStatus.c_running, JobStatus.c_stopping)


class JobRecord(BaseData):
    """One job: what ran, where, its process identity and how it ended."""

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


def _is_clean_path(path: Any) -> bool:
    return isinstance(path, str) and os.path.isabs(path) and "\x00" not in path


_HIDDEN_FIELDS = {"pid_start", "supervisor_start", "launcher_pid", "launcher_start", "boot_id"}


class JobFilter(BaseData):
    """Query criteria: any JobRecord field, matched for equality. Unknown keys are an error."""

    _strict = True

    @classmethod
    def get_keys(cls) -> tuple[dict, dict]:
        return {}, {k: (t, None) for k, t in JobRecord._types.items()}


DATAFRAME_COLUMNS = (
    "status",
    "exit_code",
    "last_pid",
    "command",
    "cwd",
    "started_at",
    "ended_at",
    "duration",
    "last_update",
    "reason",
)


class JobRecordDict(dict):
    """Job id -> ``JobRecord``, in the order the database listed them."""

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(value, JobRecord):
            value = JobRecord(value)
        super().__setitem__(key, value)

    def to_dataframe(self) -> "Any":
        """A pandas DataFrame indexed by job id with real dtypes (UTC datetimes, Int64 ids/codes)."""
        import pandas as pd

        rows = {
            "status": [r.status for r in self.values()],
            "exit_code": [r.exit_code for r in self.values()],
            "last_pid": [r.last_pid for r in self.values()],
            "command": [r.command for r in self.values()],
            "cwd": [r.cwd for r in self.values()],
            "started_at": [r.started_at for r in self.values()],
            "ended_at": [r.ended_at for r in self.values()],
            "last_update": [r.last_update for r in self.values()],
            "reason": [r.reason for r in self.values()],
        }
        frame = pd.DataFrame(rows, index=pd.Index(list(self.keys()), name="self_id", dtype="string"))
        for col in ("exit_code", "last_pid"):
            frame[col] = pd.array(frame[col].tolist(), dtype="Int64")
        for col in ("status", "command", "cwd", "reason"):
            frame[col] = frame[col].astype("string")
        for col in ("started_at", "ended_at", "last_update"):
            frame[col] = pd.to_datetime(frame[col], utc=True)
        frame["duration"] = pd.to_timedelta(
            [r.duration for r in self.values()], unit="s"
        )
        return frame[list(DATAFRAME_COLUMNS)]

    def _repr_html_(self) -> str:
        return self.to_dataframe()._repr_html_()
