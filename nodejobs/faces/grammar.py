"""The grammar both faces (the ``nodejobs`` CLI and the ``%job`` magics) speak: the sub-command table
(``COMMANDS``) that builds their argparse parsers, and the argparse types of its option values."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nodejobs.model.states import FINAL_STATUSES, STATUSES
from nodejobs.store.query import parse_age, parse_when

CLI, MAGIC = "cli", "magic"
BOTH = frozenset({CLI, MAGIC})
STATUS_CHOICES = ("active", "ended", *STATUSES)
CLEAN_CHOICES = ("ended", *FINAL_STATUSES)


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


def _checked(parse: Callable[[str], Any], text: str) -> str:
    """``text`` if ``parse`` accepts it (kept as text), else argparse's one-line error with its reason."""
    try:
        parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def age(text: str) -> str:
    """An argparse type: a length of time such as ``30d``, ``12h``, ``15m``, ``90s`` (checked, as text)."""
    return _checked(parse_age, text)


def moment(text: str) -> str:
    """An argparse type: an ISO date or an age (that long ago); checked, kept as text."""
    return _checked(parse_when, text)


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
_RESOURCE_OPTIONS = (  # for a backend with a scheduler (--backend slurm); defaults: SBATCH_* variables
    _opt("--cpus", type=count, metavar="N", help="CPUs per job (Slurm --cpus-per-task)"),
    _opt("--mem", metavar="M", help="memory per job, e.g. 4G (Slurm --mem)"),
    _opt("--time", metavar="T", help="Slurm time limit: minutes, H:M:S or D-H:M:S (Slurm --time)"),
    _opt("--gpus", metavar="G", help="GPUs per job: N or TYPE:N (Slurm --gpus)"),
    _opt("--partition", metavar="P", help="the Slurm partition"),
    _opt("--slurm-opt", action="append", default=[], metavar="OPT",
         help="one more sbatch option, e.g. --slurm-opt=--qos=low (repeatable)"),
)  # fmt: skip
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
        _opt("--keep-leftovers", action="store_true",
             help="leave running what the job started when its program ends (default: end it)"),
        *_QUEUE_OPTIONS,
        *_RESOURCE_OPTIONS,
        _opt("command", nargs=argparse.REMAINDER, metavar="[--] CMD ...", help="what to run"),
    )),
    Command("sweep", "Submit one job per combination of -p values: COMMAND with {NAME} filled in.", (
        _opt("-p", "--param", action="append", default=[], metavar="NAME=V1,V2", help="values of {NAME}"),
        _opt("--prefix", metavar="P", help="ids are P-NAMEvalue-... (default: from the command)"),
        _opt("--group", metavar="G", help="their group (default: the prefix)"),
        _opt("--limit", type=count, metavar="N", help="run at most N of the group at once"),
        _opt("--after", action="append", default=[], metavar="ID", help="start each when job ID finished"),
        _opt("--timeout", type=seconds, metavar="S", help="end each as timed_out after S seconds"),
        *_RESOURCE_OPTIONS,
        _opt("command", nargs=argparse.REMAINDER, metavar="[--] TEMPLATE ...", help="the command template"),
    )),
    Command("limit", "Let at most N jobs of GROUP run at once (none: unlimited); without N, show limits.", (
        _opt("group", nargs="?", metavar="GROUP", help="the group (created on first use)"),
        _opt("n", nargs="?", metavar="N", help="a whole number >= 1, or none"),
    )),
    Command("ls", "List the jobs (the CLI prints a table; %job returns a DataFrame indexed by id).", (
        _opt("--status", choices=STATUS_CHOICES, metavar="S",
             help=f"only jobs with this status: {', '.join(STATUS_CHOICES)}"),
        _opt("--since", type=moment, metavar="WHEN", help="only jobs started since WHEN (2h, 30d, ISO date)"),
        _opt("-n", "--limit", type=count, metavar="N",
             help="only the newest N (0: all; %job default: JobMagics.list_limit)"),
        _opt("--tag", action="append", default=[], metavar="K=V", help="only jobs with this tag (repeat)"),
        _JSON,
    ), aliases=("list",)),
    Command("top", "CPU %, memory (RSS) and threads of every running job's whole process tree.", (_JSON,)),
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
    Command("result", "Wait for a function job (jobs.submit) to end; show its return value.", (
        _ID,
        _opt("--timeout", type=seconds, metavar="S", help="give up after S seconds (default: wait)"),
    ), takes_ids=True),
    Command("rerun", "Run an ended job again: same id, command and directory.", (
        _ID,
        _ENV,
        _opt("--without-env", action="store_true", help="run without the environment values it had"),
    ), ids=False, takes_ids=True),
    Command("rm", "Delete ended jobs with their logs and scripts (all ids are checked first).",
            (_opt("job_ids", metavar="ID", nargs="+", help="the jobs to delete"),),
            ids=False, takes_ids=True),
    Command("clean", "Delete ended jobs with their logs: all, or those older than AGE / with status S.", (
        _opt("--older-than", type=age, metavar="AGE", help="only jobs that ended over AGE ago (30d, 12h)"),
        _opt("--status", choices=CLEAN_CHOICES, metavar="S", help=f"only: {', '.join(CLEAN_CHOICES)}"),
    )),
    Command("timeline", "A picture of the jobs: a bar per job from start to end, coloured by status.", (
        _opt("--status", choices=STATUS_CHOICES, metavar="S", help="only jobs with this status"),
        _opt("--since", type=moment, metavar="WHEN", help="only jobs started since WHEN"),
        _opt("-n", "--limit", type=count, metavar="N", help="only the newest N (0: all)"),
    ), faces=frozenset({MAGIC})),
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
