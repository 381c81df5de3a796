"""nodejobs: run commands as detached background jobs, recorded in SQLite, output in plain files."""

from .errors import (
    DatabaseError,
    FunctionError,
    InvalidJobIdError,
    JobExistsError,
    JobNotFoundError,
    JobStillRunningError,
    MissingEnvError,
    MissingExtraError,
    NodeJobsError,
    NoResultError,
    ResultFileError,
    UnknownFieldError,
    UnpicklableError,
)
from .jobdb import JobDB
from .jobs import Jobs, default_db_path
from .processes import Processes
from .records import JobFilter, JobRecord, JobRecordDict, JobStatus
from .schema import BaseData, Choices

__version__ = "0.1.0"

__all__ = [
    "BaseData",
    "Choices",
    "DatabaseError",
    "FunctionError",
    "InvalidJobIdError",
    "JobDB",
    "JobExistsError",
    "JobFilter",
    "JobNotFoundError",
    "JobRecord",
    "JobRecordDict",
    "JobStatus",
    "JobStillRunningError",
    "Jobs",
    "MissingEnvError",
    "MissingExtraError",
    "NoResultError",
    "NodeJobsError",
    "Processes",
    "ResultFileError",
    "UnknownFieldError",
    "UnpicklableError",
    "default_db_path",
]
