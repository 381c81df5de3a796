"""Exceptions nodejobs raises; each message is one line a user can act on."""


class NodeJobsError(Exception):
    """Base class of every nodejobs error."""


class InvalidJobIdError(NodeJobsError, ValueError):
    """A job id that cannot be used as a file name."""


class UnknownFieldError(NodeJobsError, ValueError):
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


class BadUsage(NodeJobsError, ValueError):
    """Input a face refuses before doing anything (exit status 2, or a ``UsageError``)."""
