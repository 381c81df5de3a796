"""Job statuses, which are active and which final, and the transitions allowed between them.

Every status change a ``JobDB`` writes is checked against ``TRANSITIONS``; an illegal one is a bug and
raises ``IllegalTransition``. A new run of an id (a rerun) is not a transition: it replaces an ended
record whatever its final status.

    queued   -> starting | stopped | failed_start | dependency_failed
    starting -> pending | running | stopping | finished | failed | failed_start | timed_out
    pending  -> running | stopping | finished | failed | failed_start | timed_out | dependency_failed
    running  -> stopping | finished | failed | failed_start | timed_out
    stopping -> stopped | failed_stop | timed_out
"""

from __future__ import annotations

from nodejobs.model.schema import Choices


class JobStatus(Choices):
    c_queued = "queued"  # recorded, waiting to be started (see the queue)
    c_starting = "starting"  # claimed; its processes are being created, held until recorded
    c_pending = "pending"  # submitted to a backend with a queue of its own (Slurm), waiting there
    c_running = "running"
    c_stopping = "stopping"  # a stop was asked for and is under way
    c_stopped = "stopped"  # ended by a stop
    c_finished = "finished"  # exited 0
    c_failed = "failed"  # the program ran and exited non-zero (or was killed)
    c_failed_start = "failed_start"  # the program could not be started (or exited 126/127)
    c_failed_stop = "failed_stop"  # it survived every signal a stop sent
    c_timed_out = "timed_out"  # ended by its time limit (``timeout``)
    c_dependency_failed = "dependency_failed"  # never ran: a job it was ``after`` did not finish


S = JobStatus
ACTIVE_STATUSES = (S.c_queued, S.c_starting, S.c_pending, S.c_running, S.c_stopping)
FINAL_STATUSES = (
    S.c_finished, S.c_failed, S.c_stopped, S.c_timed_out, S.c_dependency_failed, S.c_failed_start,
    S.c_failed_stop,
)  # fmt: skip
STATUSES = (*ACTIVE_STATUSES, *FINAL_STATUSES)  # every status, in the order faces list them

TRANSITIONS: dict[str, frozenset[str]] = {
    S.c_queued: frozenset({S.c_starting, S.c_stopped, S.c_failed_start, S.c_dependency_failed}),
    S.c_starting: frozenset(
        {S.c_pending, S.c_running, S.c_stopping, S.c_finished, S.c_failed, S.c_failed_start, S.c_timed_out}
    ),
    S.c_pending: frozenset(
        {S.c_running, S.c_stopping, S.c_finished, S.c_failed, S.c_failed_start, S.c_timed_out,
         S.c_dependency_failed}
    ),
    S.c_running: frozenset({S.c_stopping, S.c_finished, S.c_failed, S.c_failed_start, S.c_timed_out}),
    S.c_stopping: frozenset({S.c_stopped, S.c_failed_stop, S.c_timed_out}),
    **{final: frozenset() for final in FINAL_STATUSES},
}

# How every face colours a status (the dashboard, the timeline picture).
STATUS_COLOURS: dict[str, str] = {
    S.c_queued: "#757575",
    S.c_starting: "#b8860b",
    S.c_pending: "#607d8b",
    S.c_running: "#1565c0",
    S.c_stopping: "#b8860b",
    S.c_stopped: "#6d4c41",
    S.c_finished: "#2e7d32",
    S.c_failed: "#c62828",
    S.c_failed_start: "#c62828",
    S.c_failed_stop: "#c62828",
    S.c_timed_out: "#ad1457",
    S.c_dependency_failed: "#8d6e63",
}
UNKNOWN_COLOUR = "#555555"

# Exit codes with which the shell says it could not run the program: 126 "cannot execute", 127 "not found".
CANNOT_START_CODES = frozenset({126, 127})


assert set(STATUSES) == S.values() == set(STATUS_COLOURS), "every status is listed, with its colour"


class IllegalTransition(AssertionError):
    """A status change the table does not allow: a bug in nodejobs, never a user error."""


def check_transition(old: str | None, new: str) -> None:
    """Raise ``IllegalTransition`` unless a job may go from ``old`` to ``new``."""
    if new not in TRANSITIONS.get(old or "", frozenset()):
        raise IllegalTransition(f"illegal job status change {old!r} -> {new!r}")


def ended_status(current: str, exit_code: int | None, timed_out: bool = False) -> str:
    """The final status of a job that was ``current`` and whose program ended with ``exit_code``.

    It depends on nothing but these, never on how fast the job ended: its time limit ending it makes
    it ``timed_out``; a stop in progress ``stopped``; 0 is ``finished``; 126/127 (the shell could not
    run the program) ``failed_start``; anything else, or no code at all, ``failed``.
    """
    if timed_out:
        return S.c_timed_out
    if current == S.c_stopping:
        return S.c_stopped
    if exit_code == 0:
        return S.c_finished
    if exit_code in CANNOT_START_CODES:
        return S.c_failed_start
    return S.c_failed
