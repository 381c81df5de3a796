"""The ``Backend`` interface: what runs a job's processes, and the contract every backend keeps.

The lifecycle (``nodejobs.engine.lifecycle``) decides everything that is policy — ids, statuses, what is
recorded when — and holds for each run only the opaque ``handle`` a backend gave it. A backend knows
how to create a job *held*, let it go, see whether it still runs, wait for it and cancel it. A new
backend is a new module implementing this class plus a passing contract suite (``tests/backends/``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from nodejobs.errors import NodeJobsError

Handle = dict[str, Any]  # JSON-serialisable; stored as the record's ``handle``

# Every process of a run carries ``RUN_MARK=<run id>`` in its environment (inherited by all it starts):
# a backend gives it to the run's program, and finds the run's processes by it.
RUN_MARK = "NODEJOBS_RUN_ID"


class SubmitError(NodeJobsError):
    """The backend refused or could not create the job; the message is the reason to record."""


@dataclass(frozen=True)
class JobSpec:
    """Everything a backend needs to run one run of a job."""

    job_id: str
    run_id: str  # unique to this run; every process of the run carries it as RUN_MARK
    argv: list[str]  # the program and its arguments (a shell command is already ["/bin/sh", "-c", ...])
    env: dict[str, str]  # the job's whole environment
    cwd: str
    out_path: str  # where stdout and stderr go (created, truncated), and where the exit code is written
    err_path: str
    exit_path: str
    keep_leftovers: bool = False  # leave processes alive that outlive the job's main process
    options: dict[str, Any] = field(default_factory=dict)  # backend-specific resources, dependencies
    timeout: float | None = None  # end it (politely, then forcibly) after this many seconds of running
    on_end: list[str] | None = None  # run on the job's machine once its end is recorded, detached
    # (a backend whose jobs run on other machines ignores it: those never touch the database)


# Observation.state values
HELD = "held"  # submitted, not released yet
PENDING = "pending"  # released, waiting for the backend to run it (e.g. a cluster queue)
RUNNING = "running"
ENDED = "ended"  # ended; exit_code / ended_at say how (exit_code None: killed before it could tell)
VANISHED = "vanished"  # gone without a trace of how it ended (e.g. the machine restarted)


@dataclass(frozen=True)
class Observation:
    """What a backend knows of one handle now."""

    state: str
    exit_code: int | None = None  # shell convention: 128+N for a job killed by signal N
    ended_at: datetime | None = None
    started: bool = True  # False: it ended without its program ever being let go (never released)
    reason: str | None = None  # why it pends, or how it ended, in the backend's words
    cpu_time: float | None = None  # CPU seconds (user + system) of the whole job, when it ended
    timed_out: bool = False  # the backend ended it because its ``timeout`` ran out
    started_at: datetime | None = None  # when its program started, for a backend with a queue
    dependency_failed: bool = False  # it never runs: a job it was to run after did not finish

    @property
    def ended(self) -> bool:
        return self.state in (ENDED, VANISHED)


@dataclass(frozen=True)
class Capabilities:
    """Optional features a backend offers natively (the lifecycle or queue provides the rest)."""

    dependencies: bool = False  # can hold a job until others finished (e.g. Slurm afterok)
    delayed_start: bool = False  # can start a job at a given time (e.g. Slurm --begin)
    resource_usage: bool = False  # can report CPU and memory of a running job
    end_notification: bool = False  # ``watch`` calls back promptly when a job ends
    queues: bool = False  # a released job may wait in the backend's own queue (observed ``PENDING``)
    resources: bool = False  # takes per-job resources (``nodejobs.model.resources``: cpus, mem, time, ...)
    arrays: bool = False  # ``submit_many`` submits many jobs in one call (a sweep: one Slurm array)


@dataclass(frozen=True)
class Usage:
    """What one running job uses now: the sum over all its processes."""

    cpu_percent: float  # % of one core since the previous sample (the first: since the job started)
    rss: int  # resident memory, bytes
    threads: int
    processes: int
    cpu_time: float  # CPU seconds (user + system) used so far by the processes alive now


class Backend(ABC):
    """Creates, observes and cancels the processes of jobs. Methods may be called from any thread."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    # The files this backend keeps beside a job's exit file (``exit_path + suffix``): removing a job
    # (``rm``) removes them with it.
    side_suffixes: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def submit(self, spec: JobSpec) -> Handle:
        """Create the job *held*: nothing of the user's program runs until ``release``. Return its
        handle (JSON-serialisable, enough for any later instance of this backend to find the job).
        Raise ``SubmitError`` with the reason if the job cannot be created; then nothing is left behind.
        """

    def submit_many(self, specs: Sequence[JobSpec]) -> list[Handle | SubmitError]:
        """``submit`` of many jobs, at once where the backend can (e.g. one Slurm array): for each, in
        order, its handle or the ``SubmitError`` that refused it."""
        out: list[Handle | SubmitError] = []
        for spec in specs:
            try:
                out.append(self.submit(spec))
            except SubmitError as exc:
                out.append(exc)
        return out

    @abstractmethod
    def release(self, handle: Handle, start: bool = True) -> None:
        """Let a held job run (``start``), or with ``start=False`` make sure it never does (it then
        ends, observed with ``started=False``). Releasing a job that is gone is not an error.
        """

    @abstractmethod
    def observe(self, handles: Sequence[Handle]) -> list[Observation]:
        """The state of many jobs in one call, in the order of ``handles``. Cheap for jobs that ended
        (no call to a controller for them); works for handles made by another process or instance.
        """

    @abstractmethod
    def wait(self, handle: Handle, timeout: float | None) -> bool:
        """Block until the job ends or ``timeout`` seconds pass (None: no limit); True if it ended."""

    @abstractmethod
    def cancel(self, handles: Sequence[Handle], grace: float) -> list[bool]:
        """End the jobs and everything they started: politely first, forcibly after ``grace`` seconds,
        by this backend's own escalation. Blocks until done; for each handle, True if nothing of it
        is left running (its end is then observable). Cancelling a job that already ended cleans up
        what it left behind.
        """

    @abstractmethod
    def output(self, handle: Handle) -> tuple[str, str]:
        """The paths of the job's stdout and stderr files."""

    def settle(self, handle: Handle, timeout: float) -> None:
        """Block at most ``timeout`` seconds while a just-released job may still fail at once, so the
        caller can report an immediate failure. Only latency: statuses never depend on it.
        """
        return None

    def record_fields(self, handle: Handle) -> dict[str, Any]:
        """Fields of the job's record this backend fills from a handle (e.g. ``last_pid``)."""
        return {}

    def handle_from_record(self, record: dict[str, Any]) -> Handle | None:
        """A handle for a record written before records held one (an older nodejobs), or None."""
        return None

    def dependency_ref(self, handle: Handle) -> str | None:
        """With the ``dependencies`` capability: how the options of a job to run after this one name
        it (``JobSpec.options["after"]``, e.g. its Slurm id); None if it cannot be named."""
        return None

    def usage(self, handles: Sequence[Handle]) -> list[Usage | None]:
        """With the ``resource_usage`` capability: CPU and memory of many running jobs, measured in one
        pass, in the order of ``handles``; None for a job with no live process. Without it, not called.
        """
        return [None for _ in handles]

    def forget(self, handle: Handle) -> None:
        """Drop what this instance holds of a job whose end is recorded (the lifecycle calls it once
        the end is in the database). The job's end stays observable from its handle."""
        return None

    def watch(self, handle: Handle, on_end: Callable[[], None]) -> None:
        """Call ``on_end()`` soon after the job ends, while this backend is open (optional)."""
        return None

    def close(self) -> None:
        """Release what this instance holds (threads, connections); jobs keep running."""
        return None
