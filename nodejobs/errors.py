"""Exceptions nodejobs raises; each message is one line a user can act on."""


class NodeJobsError(Exception):
    """Base class of every nodejobs error."""


class InvalidInputError(NodeJobsError, ValueError):
    """Input refused before anything was done: an option, value, filter or id that is not valid. The
    family of every such refusal (a ``ValueError`` too, for code that catches that)."""


class InvalidJobIdError(InvalidInputError):
    """A job id that cannot be used as a file name."""


class UnknownFieldError(InvalidInputError):
    """A filter or update names a field the schema does not have."""


class JobExistsError(NodeJobsError, ValueError):
    """A job with this id is still running."""


class JobNotFoundError(NodeJobsError, LookupError):
    """No job has this id."""


class JobStillRunningError(NodeJobsError, ValueError):
    """The operation needs an ended job."""


class DatabaseError(NodeJobsError, OSError):
    """The job database cannot be opened, read or written."""


class BackendError(NodeJobsError, OSError):
    """A backend cannot be asked about its jobs now (e.g. out of file descriptors, controller down)."""


class MissingEnvError(NodeJobsError, ValueError):
    """A rerun needs environment values that were never stored."""


class MissingExtraError(NodeJobsError, ImportError):
    """An optional dependency (an extra such as ``nodejobs[plot]``) is not installed."""


class BadUsage(InvalidInputError):
    """A command line a face refuses before doing anything (exit status 2, or a ``UsageError``)."""


class UnpicklableError(NodeJobsError, TypeError):
    """A function job's call (the function or an argument) cannot be pickled; nothing was submitted."""


class ResultFileError(NodeJobsError, ValueError):
    """A function job's call or result file is missing, damaged, or not one this version reads."""


class NoResultError(NodeJobsError, LookupError):
    """The job has no return value: not a function job, or it ended without one (stopped, killed, ...)."""


class FunctionError(NodeJobsError):
    """The function of a function job raised. ``exception`` is its exception (None if it could not be
    brought back), ``remote_traceback`` the traceback text from the job; also this error's cause."""

    def __init__(self, job_id: str, message: str, exception: BaseException | None, remote_traceback: str):
        super().__init__(f"job {job_id!r} raised {message}")
        self.job_id = job_id
        self.exception = exception
        self.remote_traceback = remote_traceback


class RemoteTraceback(Exception):
    """The traceback text of an exception raised in a job (shown as the cause of the re-raised one)."""

    def __str__(self) -> str:
        return "\n" + (self.args[0] if self.args else "")
