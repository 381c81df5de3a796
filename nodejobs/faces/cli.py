"""The ``nodejobs`` command: the Jobs API from a shell, on the same database as Python and Jupyter.

Its grammar is ``nodejobs.faces.grammar.COMMANDS``, the one the ``%job`` magics speak too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import NoReturn

from nodejobs.errors import BadUsage, InvalidInputError, JobNotFoundError, NodeJobsError
from nodejobs.faces import actions
from nodejobs.faces.arguments import log_stream, parse_env, queue_options
from nodejobs.faces.grammar import CLI, add_options, commands, find_command, normalise
from nodejobs.faces.waiting import FAILED, OK, TIMED_OUT, USAGE, exit_status, wait_many
from nodejobs.jobs import Jobs, default_db_path
from nodejobs.model.frames import queue_positions
from nodejobs.model.options import DEFAULT_GROUP
from nodejobs.model.records import JobRecord, JobStatus
from nodejobs.report.wording import failure_tail, summary
from nodejobs.version import __version__

HINT = "nodejobs ls lists them"
BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a coreutils program whose reader went away

EPILOG = f"""\
exit status:
  0    done (wait, logs -f: every job finished)
  1    an operation failed (the job could not start, could not be stopped, ...)
  2    usage error, or an unknown job id (nothing was done)
  N    wait, logs -f: the first job (in argument order) that did not finish ended with exit code N
       (1..255; 1 if it had none); with --any, the first that ended
  124  wait, result: the --timeout ran out (as timeout(1))
  130  interrupted (Ctrl-C)
  {BROKEN_PIPE}  the reader of the output went away (e.g. `nodejobs ls | head -1`): nodejobs stops quietly"""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``nodejobs`` command, built from the shared sub-command table."""
    parser = _Parser(
        prog="nodejobs",
        description="Run and watch background jobs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"nodejobs {__version__}")
    parser.add_argument("--db", help=f"database directory (default: $NODEJOBS_HOME or {default_db_path()})")
    parser.add_argument("--backend", default=os.environ.get("NODEJOBS_BACKEND", "local"), metavar="NAME",
                        help="where jobs run: local or slurm (default: $NODEJOBS_BACKEND, else local)")
    sub = parser.add_subparsers(dest="action", required=True, metavar="COMMAND")
    for command in commands(CLI):
        one = sub.add_parser(
            command.name, aliases=command.aliases, help=command.summary.replace("%", "%%"),
            description=command.summary
        )
        add_options(one, command, CLI)
    return parser


def _jsonable(record: JobRecord) -> dict:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in record.items()}


def _age(when: datetime | None) -> str:
    if when is None:
        return "-"
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _table(records: Sequence[JobRecord]) -> str:
    """The ``ls`` table; with GROUP, POS (place in its group's queue) and REASON once any job is queued
    or in a group other than the default one."""
    queue_view = any(r.status == JobStatus.c_queued or r.group not in (None, DEFAULT_GROUP) for r in records)
    places = queue_positions(records)
    header: tuple[str, ...] = ("ID", "STATUS", "EXIT", "PID", "STARTED (UTC)", "SECONDS", "COMMAND")
    if queue_view:
        header = (*header[:-1], "GROUP", "POS", "REASON", "COMMAND")
    rows = [header]
    for r in records:
        row: tuple[str, ...] = (
            r.self_id,
            r.status or "-",
            "-" if r.exit_code is None else str(r.exit_code),
            "-" if r.last_pid is None else str(r.last_pid),
            _age(r.started_at),
            "-" if r.duration is None else f"{r.duration:.1f}",
            (r.command or "").replace("\n", "\\n"),
        )
        if queue_view:
            reason = (r.reason or "-").replace("\n", " ")
            row = (*row[:-1], r.group or DEFAULT_GROUP, str(places.get(r.self_id, "-")), reason, row[-1])
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths)) + "  " + row[-1] for row in rows
    )


def _failure_tail(jobs: Jobs, record: JobRecord) -> None:
    """The last lines of a failed job's stderr, on stderr, after what stdout already shows."""
    sys.stdout.flush()
    sys.stderr.write(failure_tail(jobs, record))


def _run(jobs: Jobs, args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise BadUsage("run needs a command: nodejobs run -- COMMAND [ARG...]")
    envs = parse_env(args.env)
    options = queue_options(args)
    command = command[0] if len(command) == 1 else command
    record = jobs.run(
        command, args.job_id, args.cwd, envs or None, keep_leftovers=args.keep_leftovers, **options
    )
    print(summary(record))
    return FAILED if record.status == JobStatus.c_failed_start else OK


def _sweep(jobs: Jobs, args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    template = command[0] if len(command) == 1 else shlex.join(command)
    for record in actions.sweep(jobs, args, template).values():
        print(summary(record))
    return OK


def _limit(jobs: Jobs, args: argparse.Namespace) -> int:
    limits = actions.set_limits(jobs, args.group, args.n)
    for group, n in sorted(limits.items()):
        print(f"{group}: {n}")
    if not limits:
        print("no limited groups (every group is unlimited)")
    return OK


def _ls(jobs: Jobs, args: argparse.Namespace) -> int:
    records = list(actions.select(jobs, args.status, args.limit, args.since, args.tag).values())
    if args.json:
        print(json.dumps({r.self_id: _jsonable(r) for r in records}, indent=1))
    else:
        print(_table(records))
        note = actions.listing_note(jobs, len(records), args.limit, args.status, args.since)
        if note:
            sys.stdout.flush()
            print(note, file=sys.stderr)
    return OK


def _top(jobs: Jobs, args: argparse.Namespace) -> int:
    used = jobs.usage()
    if args.json:
        print(json.dumps({i: vars(u) for i, u in used.items()}, indent=1))
    else:
        print(used.table() if used else "no running jobs")
    return OK


def _status(jobs: Jobs, args: argparse.Namespace) -> int:
    record = jobs.require(args.job_id)
    print(json.dumps(_jsonable(record), indent=1) if args.json else summary(record))
    return OK


def _logs(jobs: Jobs, args: argparse.Namespace) -> int:
    stream = log_stream(args.err)
    jobs.require(args.job_id)
    if not args.follow:
        if args.lines is not None:
            sys.stdout.write(jobs.tail(args.job_id, args.lines, stream))
        else:
            sys.stdout.write(jobs.job_logs(args.job_id)[1 if args.err else 0])
        return OK
    if args.lines is not None:
        sys.stdout.write(jobs.tail(args.job_id, args.lines, stream))
    for text in jobs.follow(args.job_id, stream, from_start=args.lines is None and not args.new):
        sys.stdout.write(text)
        sys.stdout.flush()
    record = jobs.require(args.job_id)
    if record.status != JobStatus.c_finished:
        sys.stdout.flush()
        print(summary(record), file=sys.stderr)
        if not args.err:  # stderr's tail, unless that is what was just followed
            _failure_tail(jobs, record)
    return exit_status(record)


def _stop(jobs: Jobs, args: argparse.Namespace) -> int:
    stopped = actions.stop_many(jobs, args.job_ids, args.all, args.grace)
    for record in stopped.values():
        print(summary(record))
    if not stopped:
        print("no active jobs")
    return FAILED if any(r.status == JobStatus.c_failed_stop for r in stopped.values()) else OK


def _wait(jobs: Jobs, args: argparse.Namespace) -> int:
    waited = wait_many(jobs, args.job_ids, args.timeout, args.any)
    shown = waited.ended()[:1] if args.any else waited.ended()
    for record in shown:
        print(summary(record))
    for record in shown:
        _failure_tail(jobs, record)
    late = waited.first_active()
    if waited.timed_out and late is not None:
        print(f"nodejobs: error: job {late.self_id!r} still {late.status} after {args.timeout} s",
              file=sys.stderr)  # fmt: skip
    return waited.exit_status()


def _rm(jobs: Jobs, args: argparse.Namespace) -> int:
    print(actions.removed_text(actions.remove_many(jobs, args.job_ids)))
    return OK


def _rerun(jobs: Jobs, args: argparse.Namespace) -> int:
    record = actions.rerun(jobs, args.job_id, args.env, args.without_env)
    print(summary(record))
    return FAILED if record.status == JobStatus.c_failed_start else OK


def _result(jobs: Jobs, args: argparse.Namespace) -> int:
    try:
        value = actions.result(jobs, args.job_id, args.timeout, sys.stderr.write)
    except TimeoutError as exc:
        print(f"nodejobs: error: {exc}", file=sys.stderr)
        return TIMED_OUT
    print(repr(value))
    return OK


def _clean(jobs: Jobs, args: argparse.Namespace) -> int:
    print(actions.clean(jobs, args.older_than, args.status))
    return OK


_COMMANDS = {
    "run": _run, "sweep": _sweep, "limit": _limit, "ls": _ls, "top": _top, "status": _status, "logs": _logs,
    "stop": _stop, "wait": _wait, "result": _result, "rerun": _rerun, "rm": _rm, "clean": _clean,
}  # fmt: skip


def execute(jobs: Jobs, args: argparse.Namespace) -> int:
    """Carry out one parsed command; return the exit status."""
    command = find_command(args.action, CLI)
    assert command is not None, args.action
    return _COMMANDS[command.name](jobs, normalise(args, args.action))


def _open(args: argparse.Namespace) -> Jobs:
    try:
        return Jobs(args.db, reaper=False, backend=args.backend)
    except InvalidInputError as exc:  # a database or backend option that is not valid: a usage error
        raise BadUsage(str(exc)) from None


def _quiet_stdout() -> None:
    """The reader went away: send what is left to /dev/null, so exiting does not fail again."""
    with contextlib.suppress(OSError, ValueError):  # not a real file (captured): nothing to redirect
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _error(exc: Exception) -> int:
    print(f"nodejobs: error: {actions.with_hint(exc, HINT)}", file=sys.stderr)
    return USAGE if isinstance(exc, (BadUsage, JobNotFoundError)) else FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``nodejobs`` command with ``argv`` (default: ``sys.argv[1:]``); the exit status."""
    args = build_parser().parse_args(argv)
    try:
        jobs = _open(args)
    except (NodeJobsError, OSError) as exc:
        return _error(exc)
    try:
        with jobs:
            code = execute(jobs, args)
            sys.stdout.flush()  # inside the try: a reader that went away is noticed here
            return code
    except BrokenPipeError:
        _quiet_stdout()
        return BROKEN_PIPE
    except (NodeJobsError, OSError) as exc:
        return _error(exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
