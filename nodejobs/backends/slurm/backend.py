"""``SlurmBackend``: each job one Slurm batch job whose script is the nodejobs supervisor.

Submit writes the batch script (``<exit>.sbatch``: the supervisor's text with the job's arguments) and
calls ``sbatch --parsable`` once. The job is *held* by a go-file, not by ``--hold``: its script waits
for ``<exit>.go``, which ``release`` writes once the record holds the Slurm id, so a job never runs
untracked and holding costs no second controller call (``scontrol release`` would, per job); a
submitter that dies first leaves a script that gives up after 300 s. Everything the compute node
writes is its own job's files beside the logs (exit file, ``.started`` mark): it never opens the
database, whose SQLite locking is unreliable on network filesystems.

Observing reads the exit file first (no controller call for a job that wrote it); the rest come from
one ``squeue`` call for every job this instance watches, made at most once per interval (2 s,
doubling to 60 s while nothing changes); jobs Slurm has forgotten are looked up with ``sacct`` where
the cluster keeps accounting or a job completion log, and are otherwise reported as of unknown end.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from nodejobs.backends import base
from nodejobs.backends.base import Backend, Capabilities, Handle, JobSpec, Observation, SubmitError
from nodejobs.backends.slurm import cli as slurm_cli
from nodejobs.backends.slurm.cli import QueueRow, SlurmError, SlurmUnreachable
from nodejobs.backends.slurm.script import (
    SIDE_SUFFIXES,
    array_args,
    array_key,
    array_script,
    batch_script,
    sbatch_args,
    shared_args,
    side_files,
)
from nodejobs.backends.slurm.states import end_of, is_final, is_running, pending_reason
from nodejobs.backends.supervisor import LEFTOVER_GRACE
from nodejobs.backends.supervisor.exitfile import read_exit_file
from nodejobs.store.files import remove_if_exists

log = logging.getLogger(__name__)

MIN_INTERVAL = 2.0  # seconds between squeue calls while something changes
MAX_INTERVAL = 60.0  # ... backing off to this while nothing does
WATCHDOG_MARGIN = 10.0  # seconds beyond a cancel's grace for the job's watchdog to have ended it
NODE_LOCAL = ("/tmp/", "/var/tmp/", "/dev/shm/", "/run/")
FORGOTTEN_REASON = "Slurm no longer knows the job and keeps no accounting: its end is unknown"
NEVER_SATISFIED = "DependencyNeverSatisfied"


class SlurmBackend(Backend):
    """Runs jobs on a Slurm cluster through its commands (``sbatch``, ``squeue``, ``scancel``, ``sacct``)."""

    name = "slurm"
    capabilities = Capabilities(
        dependencies=True, delayed_start=True, queues=True, resources=True, arrays=True
    )
    side_suffixes = SIDE_SUFFIXES

    def __init__(
        self, min_interval: float = MIN_INTERVAL, max_interval: float = MAX_INTERVAL,
        leftover_grace: float = LEFTOVER_GRACE,
    ) -> None:  # fmt: skip
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.leftover_grace = leftover_grace
        self._interval = min_interval
        self._rows: dict[str, QueueRow] = {}  # the last squeue answer
        self._taken = -math.inf  # when (monotonic), and
        self._taken_wall = 0.0  # when (time.time) it was asked
        self._watched: set[str] = set()  # Slurm ids of the jobs the next squeue call asks about
        self._accounting: bool | None = None  # None: not known yet
        self._warned_dirs: set[str] = set()
        self._lock = threading.Lock()

    # -- creating ----------------------------------------------------------------------------------

    def submit(self, spec: JobSpec) -> Handle:
        script = self._prepare_files([spec])
        slurm_id = self._sbatch(script, batch_script(spec, self.leftover_grace), sbatch_args(spec), spec.env)
        return self._handle(spec, slurm_id)

    def submit_many(self, specs: Sequence[JobSpec]) -> list[Handle | SubmitError]:
        """Jobs that differ only in their command, id and files (a sweep) become one Slurm array: one
        controller call for all; the others are submitted one by one."""
        alike: dict[str, list[int]] = {}
        for i, spec in enumerate(specs):
            alike.setdefault(array_key(spec), []).append(i)
        out: dict[int, Handle | SubmitError] = {}
        for indexes in alike.values():
            group = [specs[i] for i in indexes]
            handles: list[Handle | SubmitError]
            try:
                handles = [self.submit(group[0])] if len(group) == 1 else list(self._submit_array(group))
            except SubmitError as exc:
                handles = [exc] * len(group)
            out.update(zip(indexes, handles))
        return [out[i] for i in range(len(specs))]

    def _submit_array(self, specs: list[JobSpec]) -> list[Handle]:
        script = self._prepare_files(specs)
        args = [*array_args(specs), *shared_args(specs[0])]
        array_id = self._sbatch(script, array_script(specs, self.leftover_grace), args, specs[0].env)
        return [self._handle(spec, f"{array_id}_{i}") for i, spec in enumerate(specs)]

    def _prepare_files(self, specs: Sequence[JobSpec]) -> str:
        """Clear what earlier runs of these ids left, create their (empty) logs; the script's path."""
        try:
            for spec in specs:
                for path in (spec.exit_path, *side_files(spec.exit_path), spec.out_path, spec.err_path):
                    remove_if_exists(path)  # nothing of an earlier run of the id may be taken for this one's
                for path in (spec.out_path, spec.err_path):  # Slurm, or the script, appends to them
                    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        except OSError as exc:
            raise SubmitError(f"cannot submit: {exc}") from None
        self._warn_if_node_local(os.path.dirname(specs[0].exit_path))
        return specs[0].exit_path + ".sbatch"

    def _sbatch(self, script: str, text: str, args: list[str], env: dict[str, str]) -> str:
        """Write the batch script and submit it; its Slurm id (``SubmitError`` if refused)."""
        try:
            with open(os.open(script, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                f.write(text)
            slurm_id = slurm_cli.sbatch(args, script, env)
        except OSError as exc:
            if isinstance(exc, SlurmUnreachable):
                raise
            raise SubmitError(str(exc) if isinstance(exc, SlurmError) else f"cannot submit: {exc}") from None
        with self._lock:
            self._interval = self.min_interval  # something changed: look again soon
        return slurm_id

    def _handle(self, spec: JobSpec, slurm_id: str) -> Handle:
        with self._lock:
            self._watched.add(slurm_id)
        return {
            "slurm": slurm_id, "run": spec.run_id, "at": time.time(), "exit": spec.exit_path,
            "out": spec.out_path, "err": spec.err_path,
        }  # fmt: skip

    def release(self, handle: Handle, start: bool = True) -> None:
        if start:
            _touch(handle["exit"] + ".go")
            return
        self._never_start([handle], "stopped")

    def _never_start(self, handles: Sequence[Handle], why: str) -> None:
        """Make sure jobs that have not started never do: their no-go file, and out of Slurm's queue."""
        for handle in handles:
            _touch(handle["exit"] + ".nogo", why)
        slurm_cli.scancel([h["slurm"] for h in handles])

    def _warn_if_node_local(self, directory: str) -> None:
        if directory in self._warned_dirs or not (directory + "/").startswith(NODE_LOCAL):
            return
        self._warned_dirs.add(directory)
        log.warning("Slurm jobs write their logs and exit files to %s, which looks node-local: compute "
                    "nodes must see the database directory (use a shared filesystem)", directory)

    # -- observing ---------------------------------------------------------------------------------

    def observe(self, handles: Sequence[Handle]) -> list[Observation]:
        seen: list[Observation | None] = [_exit_observation(h) for h in handles]
        ask = [i for i, (h, o) in enumerate(zip(handles, seen)) if o is None or _needs_why(o, h)]
        if not ask:
            return _filled(seen)
        rows, taken = self._queue([handles[i]["slurm"] for i in ask])
        forgotten: list[int] = []
        for i in ask:
            row = rows.get(handles[i]["slurm"])
            if row is None and handles[i].get("at", 0) < taken - 1:
                forgotten.append(i)
            else:
                seen[i] = self._from_row(handles[i], row, seen[i])
        if forgotten:
            looked = self._forgotten([handles[i] for i in forgotten])
            for i in forgotten:
                seen[i] = looked[handles[i]["slurm"]]
        never = [h for h, o in zip(handles, seen) if o is not None and o.reason == NEVER_SATISFIED]
        if never:
            self._never_start(never, "dependency")
            seen = [_dependency_failed() if o and o.reason == NEVER_SATISFIED else o for o in seen]
        return _filled(seen)

    def _queue(self, ids: Sequence[str], force: bool = False) -> tuple[dict[str, QueueRow], float]:
        """squeue's rows for every watched job (``ids`` join them), asked at most once per interval
        unless ``force``; and when (time.time) they were asked. With the controller unreachable, the
        last rows, as of no time at all: then no job is taken for forgotten (its files still tell)."""
        with self._lock:
            self._watched.update(ids)
            if not force and time.monotonic() - self._taken < self._interval:
                return self._rows, self._taken_wall
            watched = sorted(self._watched, key=_id_order)
        wall = time.time()
        try:
            rows = slurm_cli.squeue(watched)
        except SlurmUnreachable as exc:
            log.warning("cannot ask Slurm about %d job(s) now (their files still tell their ends): %s",
                        len(watched), exc)  # fmt: skip
            with self._lock:
                self._taken, self._taken_wall, self._interval = time.monotonic(), -math.inf, self.min_interval
                return self._rows, -math.inf
        with self._lock:
            same = {i: self._rows.get(i) for i in watched} == {i: rows.get(i) for i in watched}
            self._interval = min(self._interval * 2, self.max_interval) if same else self.min_interval
            self._rows, self._taken, self._taken_wall = rows, time.monotonic(), wall
        return rows, wall

    def _from_row(self, handle: Handle, row: QueueRow | None, ended: Observation | None) -> Observation:
        """What squeue's ``row`` (None: too new to be in it) says of a job, with its files."""
        started_at = _mark_time(handle)
        if ended is not None:  # killed by a signal: Slurm may say why (TIMEOUT, PREEMPTED, ...)
            if row is None or not is_final(row.state):
                return ended
            why = end_of(row.state, ended.exit_code)
            return replace(ended, reason=why.reason or ended.reason, timed_out=why.timed_out)
        if row is None or row.state == "PENDING" or not (is_running(row.state) or is_final(row.state)):
            if started_at is not None:
                return Observation(base.RUNNING, started_at=started_at)
            if not os.path.exists(handle["exit"] + ".go") and not os.path.exists(handle["exit"] + ".nogo"):
                return Observation(base.HELD)
            return Observation(base.PENDING, reason=pending_reason(row.reason if row else None))
        if is_running(row.state):
            return Observation(base.RUNNING, started_at=started_at)
        return self._final(handle, row.state, None, started_at)

    def _final(
        self, handle: Handle, state: str, code: int | None, started_at: datetime | None
    ) -> Observation:
        """A job Slurm says ended (``state``) that wrote no exit file (or not yet: read it once more)."""
        ended = _exit_observation(handle)
        if ended is not None:
            return ended
        why = end_of(state, code)
        if started_at is None:  # ended before its program was let go
            nogo = _read(handle["exit"] + ".nogo")
            if nogo == "dependency":
                return _dependency_failed()
            reason = None if nogo else f"{state} before it started"
            return Observation(base.ENDED, started=False, reason=reason)
        return Observation(base.ENDED, exit_code=why.exit_code, ended_at=datetime.now(timezone.utc),
                           reason=why.reason, timed_out=why.timed_out, started_at=started_at)  # fmt: skip

    def _forgotten(self, handles: Sequence[Handle]) -> dict[str, Observation]:
        """The ends of jobs squeue no longer lists: from accounting, or the completion log, or unknown."""
        ids = [h["slurm"] for h in handles]
        found = self._accounted(ids)
        out: dict[str, Observation] = {}
        for handle in handles:
            ended = _exit_observation(handle)
            if ended is not None:
                out[handle["slurm"]] = ended
            elif found is not None and handle["slurm"] in found:
                state, code = found[handle["slurm"]]
                out[handle["slurm"]] = self._final(handle, state, code, _mark_time(handle))
            else:
                out[handle["slurm"]] = Observation(base.VANISHED, reason=FORGOTTEN_REASON)
        return out

    def _accounted(self, ids: list[str]) -> dict[str, tuple[str, int | None]] | None:
        """sacct's answer for ``ids``: accounting if the cluster has it, else its job completion log."""
        if self._accounting is not False:
            found = slurm_cli.sacct(ids, completion=False)
            self._accounting = found is not None
            if found is not None:
                return found
        return slurm_cli.sacct(ids, completion=True)

    def wait(self, handle: Handle, timeout: float | None) -> bool:
        deadline = None if timeout is None or math.isinf(timeout) else time.monotonic() + timeout
        pause = 0.02
        event = threading.Event()
        while not self.observe([handle])[0].ended:  # an exit file ends it; squeue at most once per interval
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            event.wait(pause if remaining is None else min(pause, remaining))
            pause = min(pause * 1.5, 0.5)
        return True

    # -- ending ------------------------------------------------------------------------------------

    def cancel(self, handles: Sequence[Handle], grace: float) -> list[bool]:
        """Pending jobs leave Slurm's queue (one ``scancel``); running ones get SIGTERM, all their
        processes (one ``scancel --signal=TERM --full``), and their watchdog sends SIGKILL after
        ``grace``; a job still without an exit file after that is cancelled by Slurm itself."""
        seen = self.observe(handles)
        running = [h for h, o in zip(handles, seen) if o.state == base.RUNNING]
        waiting = [h for h, o in zip(handles, seen) if o.state in (base.HELD, base.PENDING)]
        if waiting:
            self._never_start(waiting, "stopped")
        for handle in running:
            _touch(handle["exit"] + ".cancel", f"{max(grace, 0.0):g}")
        slurm_cli.scancel([h["slurm"] for h in running], signal="TERM")
        deadline = time.monotonic() + grace + WATCHDOG_MARGIN
        pause = threading.Event()
        while any(_exit_observation(h) is None for h in running) and time.monotonic() < deadline:
            pause.wait(0.05)
        left = [h for h in running if _exit_observation(h) is None]
        slurm_cli.scancel([h["slurm"] for h in left])  # Slurm's own escalation (KillWait) for the rest
        return self._await_ends(handles, grace + WATCHDOG_MARGIN + 60.0)

    def _await_ends(self, handles: Sequence[Handle], timeout: float) -> list[bool]:
        """Whether each job has ended, looking (squeue, forced) until all have or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while True:
            ids = [h["slurm"] for h in handles if _exit_observation(h) is None]
            if ids:
                self._queue(ids, force=True)
            with self._lock:
                self._taken = -math.inf  # the next observe asks again: these ends are news
            ended = [o.ended for o in self.observe(handles)]
            if all(ended) or time.monotonic() > deadline:
                return ended
            pause.wait(0.2)

    def output(self, handle: Handle) -> tuple[str, str]:
        return handle["out"], handle["err"]

    def dependency_ref(self, handle: Handle) -> str | None:
        return handle.get("slurm")

    def record_fields(self, handle: Handle) -> dict[str, Any]:
        return {"last_pid": None}

    def forget(self, handle: Handle) -> None:
        """Stop asking Slurm about a job whose end is recorded."""
        with self._lock:
            self._watched.discard(handle["slurm"])

    def watched(self) -> int:
        """How many jobs the next squeue call asks about."""
        with self._lock:
            return len(self._watched)


def _filled(seen: list[Observation | None]) -> list[Observation]:
    """The observations of ``observe``, every one filled in by then."""
    filled = [o for o in seen if o is not None]
    assert len(filled) == len(seen), "every handle is observed"
    return filled


def _id_order(slurm_id: str) -> tuple[int, ...]:
    """Slurm ids in their order: ``123`` and array tasks ``123_4``."""
    return tuple(int(part) for part in slurm_id.split("_") if part.isdigit())


# -- files -------------------------------------------------------------------------------------------


def _exit_observation(handle: Handle) -> Observation | None:
    """The end the job's supervisor wrote, with when its program started on its node."""
    ended = read_exit_file(handle["exit"])
    if ended is None or not ended.started:
        return ended
    return replace(ended, started_at=_mark_time(handle))


def _needs_why(ended: Observation, handle: Handle) -> bool:
    """Whether Slurm may know more of an end than its exit file: a signal, not sent by a nodejobs stop
    or time limit."""
    code = ended.exit_code
    signalled = ended.started and not ended.timed_out and code is not None and code > 128
    return signalled and not os.path.exists(handle["exit"] + ".cancel")


def _dependency_failed() -> Observation:
    return Observation(base.ENDED, started=False, reason=NEVER_SATISFIED, dependency_failed=True)


def _mark_time(handle: Handle) -> datetime | None:
    """When the job's program was let go on its node (the ``.started`` mark), or None if not yet."""
    try:
        return datetime.fromtimestamp(os.stat(handle["exit"] + ".started").st_mtime, timezone.utc)
    except OSError:
        return None


def _touch(path: str, text: str = "") -> None:
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(text + "\n" if text else "")


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None
