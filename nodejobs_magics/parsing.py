"""Parsing ``%job`` lines: the sub-command parsers, ``-e K=V`` pairs, and how ``%job run`` splits a command
(the rule is ``RUN_RULE``, also shown by ``%job help run``)."""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Sequence

from IPython.core.error import UsageError

from nodejobs.records import JobStatus

RUN_RULE = """\
How the command is run: the words after the options are split like a shell splits them, quotes kept.
If the text uses shell syntax outside quotes (| & ; < > ( ) $ ` * ? [, a leading ~ or #, or a leading
NAME=value) it is given to /bin/sh -c exactly as typed, as in a terminal. A single quoted word
containing spaces (%job run "make && make test") also goes to the shell. Anything else runs directly,
without a shell, so each argument reaches the program exactly as split. IPython expands $name and
{expression} first; write $$ or {{ }} for a literal $ or braces."""

_SPECIAL = frozenset("|&;<>()$`*?[")
_ENV_ASSIGNMENT = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_]*=")
_WORD = re.compile(r"""(?:[^\s'"\\]|\\.|'[^']*'|"(?:[^"\\]|\\.)*")+""", re.S)
_SPACE = re.compile(r"\s*")
_VALUE_OPTIONS = frozenset({"--id", "--cwd", "-e", "--env"})

STATUS_CHOICES = ("active", "ended", *sorted(JobStatus.values()))


class SubcommandParser(argparse.ArgumentParser):
    """An argparse parser for one ``%job`` sub-command: errors are a one-line ``UsageError``."""

    def __init__(self, name: str, summary: str, epilog: str | None = None) -> None:
        super().__init__(
            prog=f"%job {name}",
            description=summary,
            epilog=epilog,
            add_help=False,
            allow_abbrev=False,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        self.summary = summary
        self.add_argument("-h", "--help", action="store_true", help="show this help")

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see `%job help {self.prog.split()[-1]}`)")

    def parse_words(self, words: Sequence[str]) -> argparse.Namespace:
        return self.parse_args(list(words))


def _parsers() -> dict[str, SubcommandParser]:
    p: dict[str, SubcommandParser] = {}

    def add(name: str, summary: str, epilog: str | None = None) -> SubcommandParser:
        p[name] = SubcommandParser(name, summary, epilog)
        return p[name]

    add("db", "Show the job database directory of this kernel, or switch to PATH.").add_argument(
        "path", nargs="?", help="directory holding jobs.db and logs/"
    )
    run = add("run", "Start COMMAND as a background job and return its record.", RUN_RULE)
    run.add_argument("--id", dest="job_id", help="the job's id (default: a readable one, e.g. train-1)")
    run.add_argument("--cwd", help="working directory (default: the kernel's)")
    run.add_argument("-e", "--env", action="append", default=[], metavar="K=V", help="set a variable")
    run.add_argument("command", nargs="*", metavar="[--] COMMAND", help="what to run")
    add("list", "A DataFrame of the jobs, indexed by id.").add_argument(
        "--status", choices=STATUS_CHOICES, help="only jobs with this status ('active', 'ended' or a status)"
    )
    add("status", "The job's record.").add_argument("job_id", metavar="ID")
    logs = add("logs", "Print the job's output (stdout, or stderr with --err).")
    logs.add_argument("job_id", metavar="ID")
    logs.add_argument("--err", action="store_true", help="stderr instead of stdout")
    logs.add_argument("-n", "--lines", type=int, metavar="N", help="only the last N lines")
    follow = add(
        "follow", "Stream the job's output until it ends; interrupting stops following, not the job."
    )
    follow.add_argument("job_id", metavar="ID")
    follow.add_argument("--err", action="store_true", help="stderr instead of stdout")
    follow.add_argument("--new", action="store_true", help="only output written from now on")
    wait = add("wait", "Wait for the job to end, showing elapsed time and its last line; return its record.")
    wait.add_argument("job_id", metavar="ID")
    wait.add_argument("--timeout", type=float, metavar="S", help="give up after S seconds (an error)")
    stop = add("stop", "Stop a job (SIGTERM to its whole process tree, SIGKILL after the grace time).")
    stop.add_argument("job_id", metavar="ID", nargs="?")
    stop.add_argument("--all", action="store_true", help="stop every active job")
    stop.add_argument("--grace", type=float, metavar="S", help="seconds before SIGKILL")
    add("rerun", "Run an ended job again: same id, command and directory.").add_argument(
        "job_id", metavar="ID"
    )
    add("rm", "Delete an ended job's record, logs and script.").add_argument("job_id", metavar="ID")
    add("clean", "Delete every ended job with its logs.")
    add("watch", "Show a live dashboard of the jobs (or only of the IDs) and return it.").add_argument(
        "job_ids", metavar="ID", nargs="*"
    )
    add("help", "Show the sub-commands, or one sub-command's options.").add_argument(
        "topic", nargs="?", metavar="SUBCOMMAND"
    )
    return p


PARSERS = _parsers()
SUBCOMMANDS = tuple(PARSERS)
ID_SUBCOMMANDS = frozenset({"status", "logs", "follow", "wait", "stop", "rerun", "rm", "watch"})


def overview() -> str:
    """One line per sub-command, for ``%job help`` and ``%job?``."""
    width = max(len(n) for n in SUBCOMMANDS)
    lines = [f"  {name:<{width}}  {parser.summary}" for name, parser in PARSERS.items()]
    return "Sub-commands:\n" + "\n".join(lines) + "\n\n`%job help SUBCOMMAND` shows its options."


def split_words(text: str, prog: str = "%job") -> list[str]:
    """``text`` split like a shell would; unbalanced quotes are a ``UsageError``."""
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"{prog}: {exc}") from None


def split_run_line(line: str) -> tuple[list[str], str]:
    """Split ``[OPTIONS] [--] COMMAND...`` into the option words and the command's text as typed."""
    options: list[str] = []
    pos = 0
    wants_value = False
    while True:
        pos = _SPACE.match(line, pos).end()  # type: ignore[union-attr]
        if pos >= len(line):
            return options, ""
        match = _WORD.match(line, pos)
        if match is None or (match.end() < len(line) and not line[match.end()].isspace()):
            split_words(line[pos:], "%job run")  # raises the shell's message
            raise UsageError("%job run: cannot split the command line")
        word = split_words(match.group(), "%job run")
        value = word[0] if word else ""
        if wants_value:
            options.append(value)
            wants_value = False
        elif value == "--":
            return options, line[match.end() :]
        elif not value.startswith("-") or value == "-":
            return options, line[pos:]
        else:
            options.append(value)
            wants_value = value in _VALUE_OPTIONS
        pos = match.end()


def has_shell_syntax(text: str) -> bool:
    """True if ``text`` uses shell syntax outside quotes (see the module docstring)."""
    if _ENV_ASSIGNMENT.match(text):
        return True
    single = double = escaped = False
    word_start = True
    for char in text:
        if escaped:
            escaped = False
        elif single:
            single = char != "'"
        elif char == "\\":
            escaped = True
        elif double:
            if char in "$`":
                return True
            double = char != '"'
        elif char == "'":
            single = True
        elif char == '"':
            double = True
        elif char in _SPECIAL or (word_start and char in "~#"):
            return True
        word_start = char.isspace()
    return False


def command_from_text(text: str) -> str | list[str]:
    """What ``Jobs.run`` gets for ``%job run`` text: a shell string or an argv list (see the rule)."""
    words = split_words(text, "%job run")
    if not words:
        raise UsageError("%job run: no command given (see `%job help run`)")
    if has_shell_syntax(text):
        return text.strip()
    if len(words) == 1 and (has_shell_syntax(words[0]) or any(c.isspace() for c in words[0])):
        return words[0]
    return words


def parse_env(pairs: Sequence[str], prog: str) -> dict[str, str]:
    """``["K=V", ...]`` as a dict; a pair without ``=`` or with a bad name is a ``UsageError``."""
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise UsageError(f"{prog}: -e wants NAME=VALUE, not {pair!r}")
        env[key] = value
    return env
