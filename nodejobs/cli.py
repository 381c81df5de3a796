"""The ``nodejobs`` command: the Jobs API from a shell, on the same database as Python and Jupyter."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import NoReturn

from .errors import NodeJobsError
from .jobs import Jobs, default_db_path
from .records import JobRecord, JobStatus


def _parse_env(items: Sequence[str]) -> dict[str, str]:
    envs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"-e expects KEY=VALUE, got {item!r}")
        envs[key] = value
    return envs


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nodejobs", description="Run and watch background jobs.")
    parser.add_argument("--db", help=f"database directory (default: $NODEJOBS_HOME or {default_db_path()})")
    sub = parser.add_subparsers(dest="action", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="start a job: one argument runs through sh, several run directly")
    run.add_argument("--id", dest="job_id", help="job id (default: made from the command)")
    run.add_argument("--cwd", help="working directory (default: the current one)")
    run.add_argument("-e", "--env", action="append", default=[], metavar="K=V", help="environment variable")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG...]")

    ls = sub.add_parser("ls", help="list jobs")
    ls.add_argument("--status", choices=sorted(JobStatus.values()))
    ls.add_argument("--json", action="store_true", help="one JSON object per job, keyed by id")

    for name, text in (("status", "show a job's record"), ("stop", "stop a job"), ("wait", "wait for a job")):
        p = sub.add_parser(name, help=text)
        p.add_argument("job_id")
        if name == "wait":
            p.add_argument("--timeout", type=float, help="give up after this many seconds")
        if name == "status":
            p.add_argument("--json", action="store_true")

    logs = sub.add_parser("logs", help="print a job's output")
    logs.add_argument("job_id")
    logs.add_argument("-n", "--lines", type=int, help="only the last N lines")
    logs.add_argument("-f", "--follow", action="store_true", help="print new output until the job ends")
    logs.add_argument("--err", action="store_true", help="stderr instead of stdout")

    rm = sub.add_parser("rm", help="delete ended jobs and their logs")
    rm.add_argument("job_ids", nargs="+")
    sub.add_parser("clean", help="delete every ended job and its logs")
    return parser


def _jsonable(record: JobRecord) -> dict:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in record.items()}


def _age(when: datetime | None) -> str:
    if when is None:
        return "-"
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _table(records: Sequence[JobRecord]) -> str:
    header = ("ID", "STATUS", "EXIT", "PID", "STARTED (UTC)", "SECONDS", "COMMAND")
    rows = [header] + [
        (
            r.self_id,
            r.status or "-",
            "-" if r.exit_code is None else str(r.exit_code),
            "-" if r.last_pid is None else str(r.last_pid),
            _age(r.started_at),
            "-" if r.duration is None else f"{r.duration:.1f}",
            (r.command or "").replace("\n", "\\n"),
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths)) + "  " + row[-1] for row in rows
    )


def _describe(record: JobRecord) -> str:
    text = f"{record.self_id}: {record.status}"
    if record.last_pid is not None and record.is_active:
        text += f" (pid {record.last_pid})"
    if record.exit_code is not None:
        text += f", exit code {record.exit_code}"
    if record.reason:
        text += f" — {record.reason}"
    return text


def _require(record: JobRecord | None, job_id: str) -> JobRecord:
    if record is None:
        raise NodeJobsError(f"no job {job_id!r}")
    return record


def _run(jobs: Jobs, args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise NodeJobsError("run needs a command: nodejobs run -- COMMAND [ARG...]")
    command = command[0] if len(command) == 1 else command
    record = jobs.run(command, args.job_id, args.cwd, _parse_env(args.env))
    print(_describe(record))
    return 1 if record.status == JobStatus.c_failed_start else 0


def _logs(jobs: Jobs, args: argparse.Namespace) -> int:
    stream = "err" if args.err else "out"
    _require(jobs.get_status(args.job_id), args.job_id)
    if args.lines is not None:
        sys.stdout.write(jobs.tail(args.job_id, args.lines, stream))
    elif not args.follow:
        out, err = jobs.job_logs(args.job_id)
        sys.stdout.write(err if args.err else out)
    if args.follow:
        for text in jobs.follow(args.job_id, stream, from_start=args.lines is None):
            sys.stdout.write(text)
            sys.stdout.flush()
    return 0


def dispatch(jobs: Jobs, args: argparse.Namespace) -> int:
    """Carry out one parsed command; return the exit code."""
    if args.action == "run":
        return _run(jobs, args)
    if args.action == "ls":
        records = list(jobs.list_status({"status": args.status} if args.status else None).values())
        if args.json:
            print(json.dumps({r.self_id: _jsonable(r) for r in records}, indent=1))
        else:
            print(_table(records))
        return 0
    if args.action == "status":
        record = _require(jobs.get_status(args.job_id), args.job_id)
        print(json.dumps(_jsonable(record), indent=1) if args.json else _describe(record))
        return 0
    if args.action == "logs":
        return _logs(jobs, args)
    if args.action == "stop":
        record = _require(jobs.stop(args.job_id), args.job_id)
        print(_describe(record))
        return 0 if record.status != JobStatus.c_failed_stop else 1
    if args.action == "wait":
        record = jobs.wait(args.job_id, args.timeout)
        print(_describe(record))
        return 0 if record.status == JobStatus.c_finished else 1
    if args.action == "rm":
        for job_id in args.job_ids:
            jobs.remove(job_id)
        return 0
    if args.action == "clean":
        removed = jobs.clean()
        print(f"removed {len(removed)} ended job(s)")
        return 0
    raise AssertionError(args.action)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with Jobs(args.db, reaper=False) as jobs:
            return dispatch(jobs, args)
    except (NodeJobsError, ValueError, TimeoutError, argparse.ArgumentTypeError) as exc:
        print(f"nodejobs: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
