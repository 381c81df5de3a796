"""``JobPaths``: where every file of a job lives (the only code that knows their names).

A job's files are named after its ``logfile`` (default: its id) in its ``logdir`` (default: the
database's log directory): its output, its exit code, a queued job's pending launch, and the files a
backend keeps beside the exit file (each backend declares their suffixes). A function job's call file
and result file are the record's ``call`` path, trusted only inside the database's log directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from nodejobs.model.records import JobRecord, validate_job_id

OUT_SUFFIX = "_out.txt"
ERR_SUFFIX = "_errors.txt"
EXIT_SUFFIX = ".exit"
SCRIPT_SUFFIX = "_script"
PENDING_SUFFIX = "_pending.json"
CALL_SUFFIX = "_call.pkl"
RESULT_SUFFIX = "_result.pkl"
SCRIPT_EXTENSIONS = (".sh", ".py")  # a %%job cell's script: shell or Python


def result_path(call_path: str) -> str:
    """Where the result of the call in ``call_path`` is written."""
    base = call_path[: -len(CALL_SUFFIX)] if call_path.endswith(CALL_SUFFIX) else call_path
    return base + RESULT_SUFFIX


def call_files(call_path: str, logdir: str) -> list[str]:
    """The call file and its result file, if ``call_path`` is a call file inside ``logdir`` (else none:
    a path from a record is never trusted to name anything else)."""
    inside = os.path.dirname(os.path.abspath(call_path)) == os.path.abspath(logdir)
    return [call_path, result_path(call_path)] if inside and call_path.endswith(CALL_SUFFIX) else []


class JobPaths:
    """The files of one job; ``home`` is the database's log directory."""

    def __init__(
        self, home: str, job_id: str, logdir: str | None = None, logfile: str | None = None,
        call_path: str | None = None,
    ) -> None:  # fmt: skip
        self.home = home
        self.job_id = job_id
        self.call_path = call_path
        self.base = os.path.join(logdir or home, logfile or job_id)  # the start of the names of its files
        self.out = self.base + OUT_SUFFIX  # its stdout
        self.err = self.base + ERR_SUFFIX  # its stderr
        self.exit = self.base + EXIT_SUFFIX  # where its supervisor writes its exit code
        self.pending = self.base + PENDING_SUFFIX  # a queued job's launch, until it starts

    @classmethod
    def of(cls, record: JobRecord, home: str) -> JobPaths:
        """The files of ``record``'s job in a database whose log directory is ``home``."""
        return cls(home, record.self_id, record.logdir, record.logfile, record.call)

    def script(self, extension: str) -> str:
        """Where the job's script (from ``%%job``) is kept."""
        return os.path.join(self.home, validate_job_id(self.job_id) + SCRIPT_SUFFIX + extension)

    def calls(self) -> list[str]:
        """A function job's call file and result file; none if its ``call`` path is not one of ours."""
        return call_files(self.call_path, self.home) if self.call_path else []

    def side(self, suffixes: Iterable[str]) -> list[str]:
        """The files a backend keeps beside the exit file, one per suffix it declares."""
        return [self.exit + suffix for suffix in suffixes]

    def own(self) -> list[str]:
        """Every file of the job that the store knows of (a backend's side files aside)."""
        scripts = [self.script(extension) for extension in SCRIPT_EXTENSIONS]
        return [self.out, self.err, self.exit, self.pending, *scripts, *self.calls()]


def default_db_path() -> str:
    """``$NODEJOBS_HOME``, else ``$XDG_DATA_HOME/nodejobs``, else ``~/.local/share/nodejobs``."""
    if os.environ.get("NODEJOBS_HOME"):
        return os.path.expanduser(os.environ["NODEJOBS_HOME"])
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(data_home, "nodejobs")
