"""nodejobs: run commands as detached background jobs, recorded in SQLite, output in plain files."""

from nodejobs.errors import (
    BackendError,
    DatabaseError,
    FunctionError,
    InvalidInputError,
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
from nodejobs.jobs import Jobs, default_db_path
from nodejobs.model.listings import JobRecordDict
from nodejobs.model.records import JobFilter, JobRecord, JobStatus
from nodejobs.model.schema import BaseData, Choices
from nodejobs.processes import Processes
from nodejobs.store.db import JobDB
from nodejobs.version import __version__ as __version__

__all__ = [
    "BackendError",
    "BaseData",
    "Choices",
    "DatabaseError",
    "FunctionError",
    "InvalidInputError",
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
