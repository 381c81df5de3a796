"""What the two faces (the ``nodejobs`` CLI and the ``%job`` magics) share: one grammar, one wording.

The sub-command table (``COMMANDS``) builds the argparse parsers of both faces; the functions below
parse option values, pick and summarise jobs, and hold the exit-status rules. Faces parse and
dispatch; everything they do to jobs goes through ``Jobs``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import BadUsage, JobNotFoundError, JobStillRunningError
from .preflight import check_env_name
from .queue_ops import limit, queue_options, sweep, tag
from .records import JobFilter, JobRecord, JobRecordDict, JobStatus
from .wording import FAILED_TAIL_LINES, failure_tail, format_duration, summary

__all__ = [
    "FAILED_TAIL_LINES", "BadUsage", "failure_tail", "format_duration", "limit", "queue_options", "summary",
    "sweep",
]  # fmt: skip

CLI, MAGIC = "cli", "magic"
BOTH = frozenset({CLI, MAGIC})
STATUS_CHOICES = ("active", "ended", *sorted(JobStatus.values()))

# Exit statuses (the CLI's; the magics raise UsageError where these are non-zero for usage).
OK, FAILED, USAGE, TIMED_OUT = 0, 1, 2, 124




# -- option values -------------------------------------------------------------------------------


def seconds(text: str) -> float:
    """An argparse type: seconds >= 0, ``inf`` allowed (for ``--timeout``, ``--grace``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number >= 0 or inf), not {text!r}") from None
    if math.isnan(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds (a number >= 0 or inf), not {text!r}")
    return value


def count(text: str) -> int:
    """An argparse type: a whole number >= 0 (for ``-n``)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, not {text!r}")
    return value


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """``["K=V", ...]`` as a dict; names follow ``check_env_name``. Anything else is ``BadUsage``."""
    envs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            if not sep:
                raise ValueError
            check_env_name(key)
        except ValueError:
            raise BadUsage(
                f"-e wants NAME=VALUE, NAME of letters, digits and _ not starting with a digit; not {pair!r}"
            ) from None
        envs[key] = value
    return envs


def stream(err: bool) -> str:
    """The log stream an ``--err`` flag chooses: ``"err"`` or ``"out"``."""
    return "err" if err else "out"


# -- the sub-commands ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One argparse argument: ``flags`` and ``kwargs`` as ``add_argument`` takes them, on ``faces``."""

    flags: tuple[str, ...]
    kwargs: dict[str, Any]
    faces: frozenset = BOTH

    @property
    def takes_value(self) -> bool:
        flag = self.flags[0].startswith("-")
        return flag and self.kwargs.get("action") not in ("store_true", "store_false")


def _opt(*flags: str, faces: frozenset = BOTH, **kwargs: Any) -> Option:
    return Option(flags, kwargs, faces)


@dataclass(frozen=True)
class Command:
    """A sub-command: its options, aliases, which faces have it, and which jobs its ids name."""

    name: str
    summary: str
    options: tuple[Option, ...] = ()
    aliases: tuple[str, ...] = ()
    faces: frozenset = BOTH
    ids: bool | None = field(default=None)  # completion: active jobs (True), ended (False), any (None)
    takes_ids: bool = False

    def options_for(self, face: str) -> list[Option]:
        return [o for o in self.options if face in o.faces]


_QUEUE_OPTIONS = (
    _opt("--group", metavar="G", help="its queue group (default: default); see `limit`"),
    _opt("--after", action="append", default=[], metavar="ID", help="start when job ID finished (repeat)"),
    _opt("--at", metavar="WHEN", help="start at WHEN: seconds from now, or an ISO time with a zone"),
    _opt("--timeout", type=seconds, metavar="S", help="end it as timed_out after S seconds of running"),
    _opt("--tag", action="append", default=[], metavar="K=V", help="label it (repeatable; ls --tag K=V)"),
)
_ENV = _opt("-e", "--env", action="append", default=[], metavar="K=V", help="set an environment variable")
_JSON = _opt("--json", action="store_true", faces=frozenset({CLI}), help="JSON instead of text")
_ID = _opt("job_id", metavar="ID", help="the job's id")

COMMANDS: tuple[Command, ...] = (
    Command("db", "Show the job database directory of this kernel, or switch to PATH.",
            (_opt("path", nargs="?", help="directory holding jobs.db and logs/"),), faces=frozenset({MAGIC})),
    Command("run", "Start COMMAND as a background job (one word runs through sh, several directly).", (
        _opt("--id", dest="job_id", metavar="ID", help="the job's id (default: a readable one: train-1)"),
        _opt("--cwd", metavar="DIR", help="working directory (default: the current one)"),
        _ENV,
        *_QUEUE_OPTIONS,
        _opt("command", nargs=argparse.REMAINDER, metavar="[--] CMD ...", help="what to run"),
    )),
    Command("sweep", "Submit one job per combination of -p values: COMMAND with {NAME} filled in.", (
        _opt("-p", "--param", action="append", default=[], metavar="NAME=V1,V2", help="values of {NAME}"),
        _opt("--prefix", metavar="P", help="ids are P-NAMEvalue-... (default: from the command)"),
        _opt("--group", metavar="G", help="their group (default: the prefix)"),
        _opt("--limit", type=count, metavar="N", help="run at most N of the group at once"),
        _opt("--after", action="append", default=[], metavar="ID", help="start each when job ID finished"),
        _opt("--timeout", type=seconds, metavar="S", help="end each as timed_out after S seconds"),
        _opt("command", nargs=argparse.REMAINDER, metavar="[--] TEMPLATE ...", help="the command template"),
    )),
    Command("limit", "Let at most N jobs of GROUP run at once (none: unlimited); without N, show limits.", (
        _opt("group", nargs="?", metavar="GROUP", help="the group (created on first use)"),
        _opt("n", nargs="?", metavar="N", help="a whole number >= 1, or none"),
    )),
    Command("ls", "List the jobs (the CLI prints a table; %job returns a DataFrame indexed by id).", (
        _opt("--status", choices=STATUS_CHOICES, metavar="S",
             help=f"only jobs with this status: {', '.join(STATUS_CHOICES)}"),
        _opt("--tag", action="append", default=[], metavar="K=V", help="only jobs with this tag (repeat)"),
        _JSON,
    ), aliases=("list",)),
    Command("status", "The job's record.", (_ID, _JSON), takes_ids=True),
    Command("logs", "Print the job's output; -f (or `follow ID`) streams it until the job ends.", (
        _ID,
        _opt("-f", "--follow", action="store_true", help="print new output until the job ends"),
        _opt("--err", action="store_true", help="stderr instead of stdout"),
        _opt("-n", "--lines", type=count, metavar="N", help="only the last N lines (-f: then new ones)"),
        _opt("--new", action="store_true", help="with -f: only output written from now on"),
    ), aliases=("follow",), takes_ids=True),
    Command("stop", "Stop jobs: SIGTERM to each whole process tree, SIGKILL after the grace time.", (
        _opt("job_ids", metavar="ID", nargs="*", help="the jobs to stop"),
        _opt("--all", action="store_true", help="stop every active job"),
        _opt("--grace", type=seconds, metavar="S", help="seconds from SIGTERM to SIGKILL"),
    ), ids=True, takes_ids=True),
    Command("wait", "Wait for jobs to end (all of them, or --any); their final records.", (
        _opt("job_ids", metavar="ID", nargs="+", help="the jobs to wait for"),
        _opt("--timeout", type=seconds, metavar="S", help="give up after S seconds (inf: never)"),
        _opt("--any", action="store_true", help="return when any one has ended"),
    ), takes_ids=True),
    Command("rerun", "Run an ended job again: same id, command and directory.", (
        _ID,
        _ENV,
        _opt("--without-env", action="store_true", help="run without the environment values it had"),
    ), ids=False, takes_ids=True),
    Command("rm", "Delete ended jobs with their logs and scripts (all ids are checked first).",
            (_opt("job_ids", metavar="ID", nargs="+", help="the jobs to delete"),),
            ids=False, takes_ids=True),
    Command("clean", "Delete every ended job with its logs."),
    Command("watch", "Show a live dashboard of the jobs (or only of the IDs) and return it.",
            (_opt("job_ids", metavar="ID", nargs="*", help="only these jobs"),),
            faces=frozenset({MAGIC}), takes_ids=True),
    Command("help", "Show the sub-commands, or one sub-command's options.",
            (_opt("topic", nargs="?", metavar="SUBCOMMAND"),), faces=frozenset({MAGIC})),
)  # fmt: skip


def commands(face: str) -> list[Command]:
    """The sub-commands a face offers, in the order help lists them."""
    return [c for c in COMMANDS if face in c.faces]


def find_command(name: str, face: str) -> Command | None:
    """The sub-command called ``name`` (or one of its aliases) on ``face``, or None."""
    for command in commands(face):
        if name == command.name or name in command.aliases:
            return command
    return None


def names(face: str) -> list[str]:
    """Every name a face accepts for its sub-commands, aliases included."""
    return [n for c in commands(face) for n in (c.name, *c.aliases)]


def add_options(parser: argparse.ArgumentParser, command: Command, face: str) -> None:
    """Add ``command``'s arguments for ``face`` to ``parser``."""
    for option in command.options_for(face):
        parser.add_argument(*option.flags, **option.kwargs)


def overview(face: str) -> str:
    """One line per sub-command (aliases in parentheses), for help texts."""
    labels = {c.name: c.name + (f" ({', '.join(c.aliases)})" if c.aliases else "") for c in commands(face)}
    width = max(len(label) for label in labels.values())
    return "\n".join(f"  {labels[c.name]:<{width}}  {c.summary}" for c in commands(face))


def normalise(args: argparse.Namespace, name: str) -> argparse.Namespace:
    """Fill in what an alias implies (``follow ID`` is ``logs -f ID``)."""
    if name == "follow":
        args.follow = True
    return args


# -- jobs ----------------------------------------------------------------------------------------


def not_found(jobs: Any, job_id: str) -> JobNotFoundError:
    """The one "no such job" error; faces add only their hint (``with_hint``)."""
    return JobNotFoundError(f"no job {job_id!r} in {jobs.db_path}")


def with_hint(exc: Exception, hint: str) -> str:
    """An error's one-line message, with ``hint`` after a "no such job"."""
    return f"{exc} ({hint})" if isinstance(exc, JobNotFoundError) else str(exc)


def require(jobs: Any, job_id: str) -> JobRecord:
    """The up-to-date record of ``job_id``; ``JobNotFoundError`` if there is none."""
    record = jobs.get_status(job_id)
    if record is None:
        raise not_found(jobs, job_id)
    return record


def require_all(jobs: Any, job_ids: Sequence[str]) -> dict[str, JobRecord]:
    """The records of every id, in order; nothing is returned unless all exist."""
    return {job_id: require(jobs, job_id) for job_id in job_ids}


def select(jobs: Any, status: str | None = None, tags: Sequence[str] = ()) -> JobRecordDict:
    """The jobs with ``status`` (a status, ``"active"``, ``"ended"`` or None for all) and every tag
    of ``tags`` (``K=V`` words)."""
    wanted_tags = dict(tag(pair) for pair in tags)
    criteria = JobFilter(tags=wanted_tags or None)
    if status in ("active", "ended"):
        wanted = status == "active"
        return JobRecordDict({i: r for i, r in jobs.list_status(criteria).items() if r.is_active == wanted})
    if status:
        criteria.status = status
    return jobs.list_status(criteria)




def stop_many(jobs: Any, job_ids: Sequence[str], all_active: bool, grace: float | None) -> JobRecordDict:
    """Stop the ids (all checked first), or with ``all_active`` every active job; the final records."""
    if all_active and job_ids:
        raise BadUsage("give job IDs or --all, not both")
    if not all_active and not job_ids:
        raise BadUsage("give a job ID or --all")
    targets = jobs.ids(active=True) if all_active else list(require_all(jobs, job_ids))
    stopped = JobRecordDict()
    for job_id in targets:
        record = jobs.stop(job_id, grace)
        if record is not None:  # removed meanwhile: nothing to stop
            stopped[job_id] = record
    return stopped


def remove_many(jobs: Any, job_ids: Sequence[str]) -> list[str]:
    """Delete ended jobs; every id is checked (exists, has ended) before any is deleted."""
    for job_id, record in require_all(jobs, job_ids).items():
        if record.is_active:
            raise JobStillRunningError(f"job {job_id!r} is still {record.status}; stop it first")
    for job_id in job_ids:
        jobs.remove(job_id)
    return list(job_ids)


def removed_text(job_ids: Sequence[str], ended: bool = False) -> str:
    """``removed a, b`` (after rm) or ``removed 2 ended job(s): a, b`` (after clean)."""
    if not ended:
        return "removed " + ", ".join(job_ids)
    return f"removed {len(job_ids)} ended job(s)" + (": " + ", ".join(job_ids) if job_ids else "")


def rerun(jobs: Any, job_id: str, env_pairs: Sequence[str] = (), without_env: bool = False) -> JobRecord:
    """Run an ended job again, with ``-e`` values again or ``--without-env`` if it had any."""
    envs = parse_env(env_pairs)
    return jobs.rerun(job_id, envs=envs or None, without_env=without_env)


# -- waiting and exit statuses -------------------------------------------------------------------


def exit_status(record: JobRecord) -> int:
    """A job that ended: 0 if finished, else its own exit code (1..255) when it has one, else 1."""
    if record.status == JobStatus.c_finished:
        return OK
    if record.exit_code is not None and 1 <= record.exit_code <= 255:
        return record.exit_code
    return FAILED


@dataclass
class Waited:
    """What ``wait_many`` saw: every job's last record, and whether the timeout ran out first."""

    records: dict[str, JobRecord]
    timed_out: bool
    any_ended: bool = False

    def ended(self) -> list[JobRecord]:
        return [r for r in self.records.values() if not r.is_active]

    def first_active(self) -> JobRecord | None:
        return next((r for r in self.records.values() if r.is_active), None)

    def exit_status(self) -> int:
        """With --any: the first ended job's; else that of the first job (in order) that did not finish."""
        if self.any_ended:
            ended = self.ended()
            return exit_status(ended[0]) if ended else TIMED_OUT
        for record in self.records.values():
            if record.is_active:
                return TIMED_OUT
            if record.status != JobStatus.c_finished:
                return exit_status(record)
        return OK


def wait_many(
    jobs: Any,
    job_ids: Sequence[str],
    timeout: float | None = None,
    any_ended: bool = False,
    tick: float | None = None,
    on_tick: Callable[[Waited], None] | None = None,
) -> Waited:
    """Wait until every job (or, ``any_ended``, one of them) has ended, or ``timeout`` s have passed.

    All ids are checked before waiting. ``on_tick`` is called at least every ``tick`` seconds.
    """
    waited = Waited(require_all(jobs, job_ids), timed_out=False, any_ended=any_ended)
    deadline = None if timeout is None or math.isinf(timeout) else time.monotonic() + timeout
    several = any_ended and len(waited.records) > 1
    while True:
        active = [i for i, r in waited.records.items() if r.is_active]
        if not active or (any_ended and len(active) < len(waited.records)):
            return waited
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            waited.timed_out = True
            return waited
        if on_tick is not None:
            on_tick(waited)
        steps = [s for s in (remaining, tick, 0.1 if several else None) if s is not None]
        with contextlib.suppress(TimeoutError):
            jobs.wait(active[0], timeout=min(steps) if steps else None)
        for job_id in active:
            record = jobs.get_status(job_id)
            if record is not None:
                waited.records[job_id] = record
