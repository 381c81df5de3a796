"""``FakeBackend``: an in-memory backend for testing the lifecycle's logic deterministically.

Nothing runs. A job's "program" is a shell-like command of a few words the fake understands:
``echo WORD`` (appends WORD to the job's stdout file when released), ``exit N`` (ends with N),
``trap '' TERM`` (a polite cancel does not end it: only the forced end after the grace does) and
``sleep N`` (runs until the test ends it with ``FakeCluster.finish``, or a cancel); a command that
gets to its end without any of these ends with 0. Several
``FakeBackend`` instances sharing one ``FakeCluster`` see the same jobs, as processes on one machine
or a cluster's controller would.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from nodejobs.backends import base
from nodejobs.backends.base import Backend, Capabilities, Handle, JobSpec, Observation, SubmitError


@dataclass
class FakeJob:
    spec: JobSpec
    state: str = base.HELD
    exit_code: int | None = None
    ended_at: datetime | None = None
    started: bool = True
    cancels: list[float] = field(default_factory=list)  # the grace of each cancel asked for


class FakeCluster:
    """The jobs all ``FakeBackend`` instances on it share, and the controls a test uses."""

    def __init__(self) -> None:
        self.jobs: dict[str, FakeJob] = {}
        self.calls: dict[str, int] = {}  # method name -> number of calls, to check batching
        self.refuse: str | None = None  # a reason: every submit fails with it while set
        self._ids = itertools.count(1)
        self.changed = threading.Condition()

    def new_id(self) -> str:
        return f"fake-{next(self._ids)}"

    def finish(self, handle: Handle, exit_code: int = 0) -> None:
        """End a running job as if its program exited with ``exit_code``."""
        with self.changed:
            self._end(self.jobs[handle["id"]], exit_code)

    def _end(self, job: FakeJob, exit_code: int | None, started: bool = True) -> None:
        job.state, job.exit_code, job.started = base.ENDED, exit_code, started
        job.ended_at = datetime.now(timezone.utc)
        self.changed.notify_all()

    def count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1


def _steps(spec: JobSpec) -> list[list[str]]:
    command = spec.argv[-1] if spec.argv[:2] == ["/bin/sh", "-c"] else " ".join(spec.argv)
    return [part.split() for part in command.split(";") if part.split()]


class FakeBackend(Backend):
    """A backend whose jobs live in a ``FakeCluster``."""

    name = "fake"
    capabilities = Capabilities()

    def __init__(self, cluster: FakeCluster | None = None) -> None:
        self.cluster = cluster or FakeCluster()

    def submit(self, spec: JobSpec) -> Handle:
        self.cluster.count("submit")
        if self.cluster.refuse:
            raise SubmitError(self.cluster.refuse)
        job_id = self.cluster.new_id()
        for path in (spec.out_path, spec.err_path):
            open(path, "w").close()
        with self.cluster.changed:
            self.cluster.jobs[job_id] = FakeJob(spec)
        return {"id": job_id, "out": spec.out_path, "err": spec.err_path}

    def release(self, handle: Handle, start: bool = True) -> None:
        self.cluster.count("release")
        with self.cluster.changed:
            job = self.cluster.jobs.get(handle["id"])
            if job is None or job.state != base.HELD:
                return
            if not start:
                self.cluster._end(job, None, started=False)
                return
            job.state = base.RUNNING
            for words in _steps(job.spec):
                if words[0] == "echo":
                    with open(job.spec.out_path, "a") as out:
                        out.write(" ".join(words[1:]) + "\n")
                elif words[0] == "exit":
                    self.cluster._end(job, int(words[1]) if len(words) > 1 else 0)
                    return
                elif words[0] == "sleep":
                    self.cluster.changed.notify_all()
                    return  # runs until the test finishes it or it is cancelled
            self.cluster._end(job, 0)

    def observe(self, handles: Sequence[Handle]) -> list[Observation]:
        self.cluster.count("observe")
        with self.cluster.changed:
            return [self._observation(self.cluster.jobs.get(h["id"])) for h in handles]

    @staticmethod
    def _observation(job: FakeJob | None) -> Observation:
        if job is None:
            return Observation("vanished", reason="unknown to the fake cluster")
        return Observation(job.state, exit_code=job.exit_code, ended_at=job.ended_at, started=job.started)

    def wait(self, handle: Handle, timeout: float | None) -> bool:
        job = self.cluster.jobs[handle["id"]]
        with self.cluster.changed:
            return self.cluster.changed.wait_for(lambda: job.state == base.ENDED, timeout)

    def cancel(self, handles: Sequence[Handle], grace: float) -> list[bool]:
        self.cluster.count("cancel")
        with self.cluster.changed:
            for handle in handles:
                job = self.cluster.jobs[handle["id"]]
                job.cancels.append(grace)
                if job.state == base.ENDED:
                    continue
                ignores_term = any(w[:3] == ["trap", "''", "TERM"] for w in _steps(job.spec))
                self.cluster._end(job, 137 if ignores_term else 143, started=job.state != base.HELD)
        return [True for _ in handles]

    def output(self, handle: Handle) -> tuple[str, str]:
        return handle["out"], handle["err"]
