"""Slurm's commands, as the Slurm backend calls them: found on ``PATH`` at each call (as a cluster's module
system arranges it), run with a deadline, their failures turned into errors that name Slurm.

Every function here is one call to the controller; ``calls`` counts them (the benchmarks read it).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from nodejobs.errors import BackendError

log = logging.getLogger(__name__)

# Slurm's own clients retry an unreachable controller for about 10 s (MessageTimeout) before failing;
# a deadline under that would misreport a slow controller as a dead one.
DEADLINE = 60.0
UNREACHABLE = ("Unable to contact slurm controller", "Socket timed out", "Connection refused",
               "Zero Bytes were transmitted")  # fmt: skip
NO_ACCOUNTING = "accounting storage is disabled"
_TASK_RANGE = re.compile(r"(\d+)_\[([0-9,%-]+)\]")  # array tasks not split yet: 123_[5-9]


class SlurmError(BackendError):
    """A Slurm command failed or could not be run; the message names the command and says why."""


class SlurmUnreachable(SlurmError):
    """Slurm's controller did not answer (or its commands are not installed): not an answer about jobs."""


@dataclass(frozen=True)
class QueueRow:
    """One job as ``squeue`` reports it."""

    state: str  # e.g. PENDING, RUNNING, COMPLETED, CANCELLED, TIMEOUT
    reason: str  # why it pends ("Priority", "Resources", "Dependency", ...), or "None"


class Counter:
    """How many Slurm commands this process ran, by name (thread-safe)."""

    def __init__(self) -> None:
        self.by_command: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, command: str) -> None:
        with self._lock:
            self.by_command[command] = self.by_command.get(command, 0) + 1

    def total(self, *commands: str) -> int:
        with self._lock:
            return sum(n for c, n in self.by_command.items() if not commands or c in commands)


calls = Counter()


def run(command: str, args: Sequence[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run Slurm's ``command`` with ``args``; the completed process (any exit code). Raises
    ``SlurmUnreachable`` if the command is not on ``PATH``, times out, or cannot reach the controller."""
    path = _find(command, (env or os.environ).get("PATH") or "")
    if path is None:
        raise SlurmUnreachable(f"Slurm's {command} is not on PATH: is Slurm installed (its module loaded)?")
    calls.add(command)
    try:
        done = subprocess.run(
            [path, *args], capture_output=True, text=True, env=env, timeout=DEADLINE, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise SlurmUnreachable(f"Slurm's {command} did not answer within {DEADLINE:.0f} s") from None
    except OSError as exc:
        raise SlurmUnreachable(f"cannot run Slurm's {command}: {exc.strerror or exc}") from None
    if done.returncode != 0 and any(text in done.stderr for text in UNREACHABLE):
        raise SlurmUnreachable(f"Slurm's controller is unreachable ({command}: {last_line(done.stderr)})")
    return done


_found: dict[tuple[str, str], str] = {}


def _find(command: str, search_path: str) -> str | None:
    """``command`` on ``search_path``, as ``shutil.which`` finds it; remembered per ``PATH`` value while
    the file stays executable (a module load changes ``PATH``, and so the answer)."""
    known = _found.get((command, search_path))
    if known is not None and os.access(known, os.X_OK):
        return known
    found = shutil.which(command, path=search_path)
    if found is not None:
        _found[(command, search_path)] = found
    return found


def last_line(text: str) -> str:
    """The last non-empty line of a command's output, without Slurm's ``sbatch: error:`` prefix."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "no message"
    line = lines[-1]
    for prefix in ("sbatch: error: ", "squeue: error: ", "scancel: error: ", "sacct: error: "):
        line = line.removeprefix(prefix)
    return line


def sbatch(args: Sequence[str], script: str, env: dict[str, str]) -> str:
    """Submit the batch script at path ``script``; its Slurm job id. ``SlurmError`` with Slurm's own
    message if it refuses the job."""
    done = run("sbatch", ["--parsable", *args, script], env=env)
    if done.returncode != 0:
        raise SlurmError(f"Slurm refused the job: {_refusal(done.stderr)}")
    job_id = done.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise SlurmError(f"sbatch gave no job id (it printed {done.stdout.strip()[:200]!r})")
    return job_id


def _refusal(stderr: str) -> str:
    """Slurm's reasons for refusing a job: its error lines, the most specific first."""
    lines = stderr.splitlines()
    errors = [line.removeprefix("sbatch: error: ").strip() for line in lines if "error:" in line]
    return "; ".join(errors) or last_line(stderr)


def squeue(ids: Sequence[str]) -> dict[str, QueueRow]:
    """State and pending reason of the jobs ``ids``, one call, those Slurm still knows (it forgets a
    job some minutes after its end)."""
    if not ids:
        return {}
    done = run("squeue", ["-h", "-r", "--states=all", "-j", ",".join(ids), "-o", "%i|%T|%r"])
    if done.returncode != 0:
        if "Invalid job id" in done.stderr:  # only for a single id it no longer knows
            return {}
        raise SlurmUnreachable(f"Slurm's squeue failed: {last_line(done.stderr)}")
    return parse_squeue(done.stdout, ids)


def scancel(ids: Sequence[str], signal: str | None = None) -> None:
    """Cancel the jobs ``ids`` in one call, or with ``signal`` send it to all their processes (the
    batch script too, ``--full``). Jobs Slurm no longer knows are not an error."""
    if not ids:
        return
    args = [f"--signal={signal}", "--full"] if signal else []
    done = run("scancel", [*args, *ids])
    if done.returncode != 0 and "Invalid job id" not in done.stderr:
        raise SlurmError(f"Slurm's scancel failed: {last_line(done.stderr)}")


def sacct(ids: Sequence[str], completion: bool) -> dict[str, tuple[str, int | None]] | None:
    """Final state and exit code of ended jobs from Slurm's accounting (or, with ``completion``, its job
    completion log); None if the cluster keeps neither."""
    args = ["-n", "-P", "-X", "-j", ",".join(ids), "-o", "JobID,State,ExitCode"]
    done = run("sacct", ["-c", *args] if completion else args)
    if done.returncode != 0:
        if NO_ACCOUNTING in done.stderr or "JobCompType" in done.stderr or "not configured" in done.stderr:
            return None
        raise SlurmError(f"Slurm's sacct failed: {last_line(done.stderr)}")
    return parse_sacct(done.stdout, ids)


# -- reading their answers (pure: the text in, the rows out) ------------------------------------------


def parse_squeue(text: str, ids: Collection[str]) -> dict[str, QueueRow]:
    """The rows of the jobs ``ids`` in squeue's ``%i|%T|%r`` output; other lines are ignored."""
    wanted = frozenset(ids)
    rows: dict[str, QueueRow] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            row = QueueRow(parts[1].split()[0] if parts[1].strip() else "UNKNOWN", parts[2])
            rows.update((job_id, row) for job_id in named_ids(parts[0], wanted))
    return rows


def parse_sacct(text: str, ids: Collection[str]) -> dict[str, tuple[str, int | None]]:
    """``(state, exit code)`` of the jobs ``ids`` in sacct's ``JobID|State|ExitCode`` output (``-P``);
    other lines are ignored."""
    wanted = frozenset(ids)
    found: dict[str, tuple[str, int | None]] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 3 and parts[1].strip():
            ended = (parts[1].split()[0], _exit_code(parts[2]))
            found.update((job_id, ended) for job_id in named_ids(parts[0], wanted))
    return found


def named_ids(field: str, ids: frozenset[str]) -> list[str]:
    """The ids among ``ids`` that a JobID field names: itself (``123``, array task ``123_4``), or the
    tasks of a range Slurm has not split yet (``123_[5-9]``, ``123_[1,3,5-7%2]``: ``%`` a throttle)."""
    field = field.strip()
    found = _TASK_RANGE.fullmatch(field)
    if found is None:
        return [field] if field in ids else []
    array, spec = found.group(1), found.group(2).partition("%")[0]
    tasks: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.partition("-")
        if first.isdigit() and (not last or last.isdigit()):
            tasks.update(range(int(first), int(last or first) + 1))
    out = []
    for job_id in sorted(ids):
        head, sep, task = job_id.partition("_")
        if sep and head == array and task.isdigit() and int(task) in tasks:
            out.append(job_id)
    return out


def _exit_code(text: str) -> int | None:
    """Slurm's ``CODE:SIGNAL`` in the shell convention (128+N for signal N); None if unreadable."""
    code, _, signal = text.partition(":")
    if signal.isdigit() and int(signal):
        return 128 + int(signal)
    return int(code) if code.isdigit() else None
