"""``JobMagics``: the ``%job`` line magic and the ``%%job`` cell magic. They parse, call ``Jobs``, display."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import sys
from collections.abc import Iterator
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, kwds, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Dict, Float, Int, Unicode, observe
from traitlets.config import Configurable

from nodejobs import JobNotFoundError, JobRecord, JobRecordDict, Jobs, NodeJobsError
from nodejobs.faces import actions
from nodejobs.faces.arguments import log_stream, parse_env, queue_options
from nodejobs.faces.grammar import normalise
from nodejobs.faces.waiting import Waited, wait_many
from nodejobs.report.wording import failure_tail, format_duration, summary
from nodejobs_magics import completion, parsing
from nodejobs_magics.cell import run_cell
from nodejobs_magics.dashboard import JobDashboard
from nodejobs_magics.display import Progress

log = logging.getLogger(__name__)
HINT = "`%job ls` lists them"


@contextlib.contextmanager
def user_errors(prog: str) -> Iterator[None]:
    """Turn nodejobs and OS errors into a one-line ``UsageError`` (no traceback)."""
    try:
        yield
    except UsageError:
        raise
    except JobNotFoundError as exc:  # the one "no such job" message, with this face's hint
        raise UsageError(f"%job: {actions.with_hint(exc, HINT)}") from None
    except (NodeJobsError, OSError) as exc:
        raise UsageError(f"{prog}: {exc}") from None


@magics_class
class JobMagics(Magics, Configurable):
    """``%job`` / ``%%job``: run, watch and stop background jobs. Settings: ``%config JobMagics``."""

    db_path = Unicode(
        None,
        allow_none=True,
        help="Job database directory (default: $NODEJOBS_HOME or ~/.local/share/nodejobs).",
    ).tag(config=True)
    refresh_interval = Float(1.0, help="Seconds between dashboard refreshes.").tag(config=True)
    default_shell = Unicode(
        "bash", help="Program running %%job cells without --shell ('python': this kernel's interpreter)."
    ).tag(config=True)
    log_lines = Int(40, help="Lines of output the dashboard's log pane shows.").tag(config=True)
    backend = Unicode("local", help="Where jobs run: 'local' (this machine) or 'slurm'.").tag(config=True)
    resources = Dict(
        help="Default resources of Slurm jobs, e.g. {'partition': 'gpu', 'mem': '8G', 'time': '1:00:00'}."
    ).tag(config=True)
    stop_grace = Float(3.0, help="Seconds from SIGTERM to SIGKILL when stopping a job.").tag(config=True)
    wait_interval = Float(0.5, help="Seconds between %job wait progress updates.").tag(config=True)
    list_limit = Int(100, help="%job list shows the newest this many jobs (0: all); --limit overrides.").tag(
        config=True
    )
    logs_max_bytes = Int(
        16 * 2**20, help="%job logs without -n shows only the last 1000 lines of a log larger than this."
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        self._jobs: Jobs | None = None
        self._dashboards: list[JobDashboard] = []
        super().__init__(shell=shell, **kwargs)
        self.jobs  # noqa: B018 -- open the database and start the reaper thread now

    @property
    def jobs(self) -> Jobs:
        """This kernel's ``Jobs`` (one per kernel; reopened when ``db_path`` changes)."""
        if self._jobs is None:
            path = os.path.expanduser(self.db_path) if self.db_path else None
            with user_errors("%job"):
                self._jobs = Jobs(path, grace=self.stop_grace, backend=self.backend, resources=self.resources)
        return self._jobs

    @observe("db_path", "backend", "resources")
    def _db_path_changed(self, change: dict) -> None:
        if getattr(self, "_jobs", None) is not None:
            self._close_jobs()

    def _close_jobs(self) -> None:
        for dashboard in self._dashboards:
            dashboard.close()
        self._dashboards.clear()
        if self._jobs is not None:
            self._jobs.close()
            self._jobs = None

    def track(self, dashboard: JobDashboard) -> None:
        """Close ``dashboard`` when this kernel's ``Jobs`` closes (unload, or a new ``db_path``)."""
        self._dashboards = [d for d in self._dashboards if not d.closed] + [dashboard]

    def close(self) -> None:
        """Close the dashboards and stop the reaper thread (running jobs are not touched)."""
        self._close_jobs()

    # -- %job ------------------------------------------------------------------------------------

    @magic_arguments()
    @kwds(epilog=parsing.overview())
    @argument("subcommand", nargs="?", help="what to do (below); without one, this help")
    @argument("args", nargs="*", help="the sub-command's arguments")
    @line_magic("job")
    def job(self, line: str = "") -> Any:
        """Start, watch and stop background jobs that outlive the kernel.

        Jobs are detached process groups recorded in SQLite with their output in plain files, so a
        kernel restart loses nothing. The sub-commands and options are those of the ``nodejobs``
        command. Examples::

            %job run python train.py --epochs 3     # returns the record; id made up: train-1
            %job run --id etl -e MODE=full -- ./etl.sh "my file.csv"
            df = %job list                          # a DataFrame indexed by job id
            %job follow train-1                     # stream its output until it ends
            %job watch                              # a live dashboard
        """
        name, rest = ([*line.split(None, 1), ""] if line.strip() else ["help", ""])[:2]
        parser = parsing.parser_for(name)
        if parser is None:
            raise UsageError(f"%job: unknown sub-command {name!r}; one of: {', '.join(parsing.SUBCOMMANDS)}")
        with user_errors(f"%job {parser.command.name}"):
            if parser.command.name in ("run", "sweep"):
                return getattr(self, f"_{parser.command.name}")(rest)
            args = parser.parse_words(parsing.split_words(rest, f"%job {name}"))
            if args.help:
                print(parser.format_help())
                return None
            return getattr(self, f"_{parser.command.name}")(normalise(args, name))

    def _db(self, args: argparse.Namespace) -> str:
        if args.path:
            self.db_path = os.path.abspath(os.path.expanduser(args.path))
        return self.jobs.db_path

    def _run(self, text: str) -> JobRecord | None:
        option_words, command_text = parsing.split_run_line(text)
        args = parsing.PARSERS["run"].parse_words(option_words)
        if args.help:
            print(parsing.PARSERS["run"].format_help())
            return None
        command = parsing.command_from_text(command_text)
        envs = parse_env(args.env)
        options = queue_options(args)
        record = self.jobs.run(
            command, args.job_id, cwd=parsing.path(args.cwd), envs=envs or None,
            keep_leftovers=args.keep_leftovers, **options,
        )  # fmt: skip
        print(summary(record))
        return record

    def _sweep(self, text: str) -> JobRecordDict | None:
        option_words, template = parsing.split_run_line(text, "sweep")
        args = parsing.PARSERS["sweep"].parse_words(option_words)
        if args.help:
            print(parsing.PARSERS["sweep"].format_help())
            return None
        command = parsing.command_from_text(template)  # the rule of `%job run`, then {NAME} filled in
        records = actions.sweep(self.jobs, args, command if isinstance(command, str) else shlex.join(command))
        for record in records.values():
            print(summary(record))
        return records

    def _limit(self, args: argparse.Namespace) -> dict[str, int]:
        return actions.set_limits(self.jobs, args.group, args.n)

    def _ls(self, args: argparse.Namespace) -> Any:
        limit = self.list_limit if args.limit is None else args.limit
        records = actions.select(self.jobs, args.status, limit, args.since, args.tag)
        note = actions.listing_note(self.jobs, len(records), limit, args.status, args.since)
        if note:
            print(f"[{note}]")
        return records.to_dataframe()

    def _top(self, args: argparse.Namespace) -> Any:
        return self.jobs.usage().to_dataframe()

    def _timeline(self, args: argparse.Namespace) -> Any:
        newest = {"order": "newest", "limit": args.limit} if args.limit else {}
        return self.jobs.timeline(status=args.status, since=args.since, **newest)

    def _status(self, args: argparse.Namespace) -> JobRecord:
        return self.jobs.require(args.job_id)

    def _logs(self, args: argparse.Namespace) -> None:
        if args.follow:
            return self._follow(args)
        stream = log_stream(args.err)
        self.jobs.require(args.job_id)
        path = self.jobs.log_path(args.job_id, stream)
        size = os.path.getsize(path) if os.path.exists(path) else 0
        if args.lines is None and size > self.logs_max_bytes:  # never pull a huge log into the kernel
            args.lines = 1000
            print(f"[{args.job_id}: {size / 2**20:.0f} MB of output; the last {args.lines} lines follow, "
                  f"or use -n N, or open {path}]")  # fmt: skip
        if args.lines is not None:
            text = self.jobs.tail(args.job_id, args.lines, stream)
        else:
            text = self.jobs.job_logs(args.job_id)[1 if args.err else 0]
        _write(text)
        return None

    def _follow(self, args: argparse.Namespace) -> None:
        stream = log_stream(args.err)
        self.jobs.require(args.job_id)
        ends_line = True
        try:
            if args.lines is not None:
                _write(self.jobs.tail(args.job_id, args.lines, stream), newline=False)
            from_start = args.lines is None and not args.new
            for chunk in self.jobs.follow(args.job_id, stream, from_start=from_start):
                _write(chunk, newline=False)
                ends_line = chunk.endswith("\n")
        except KeyboardInterrupt:
            print(f"{'' if ends_line else chr(10)}[stopped following {args.job_id}; the job keeps running]")
            return
        record = self.jobs.require(args.job_id)
        print(f"{'' if ends_line else chr(10)}[{summary(record)}]")
        if not args.err:
            _write(failure_tail(self.jobs, record), newline=False)

    def _wait(self, args: argparse.Namespace) -> JobRecord | JobRecordDict:
        progress = Progress()

        def show(waited: Waited) -> None:
            record = waited.first_active()
            if record is not None:
                progress.update(self._progress_text(record))

        try:
            waited = wait_many(self.jobs, args.job_ids, args.timeout, args.any, self.wait_interval, show)
        except KeyboardInterrupt:
            progress.finish(f"stopped waiting for {', '.join(args.job_ids)}; the jobs keep running")
            return self._records(args.job_ids)
        late = waited.first_active()
        if waited.timed_out and late is not None:
            progress.finish(self._progress_text(late))
            raise UsageError(f"%job wait: {late.self_id} still {late.status} after {args.timeout} s")
        shown = waited.ended()[:1] if args.any else waited.ended()
        progress.finish("\n".join(summary(r) for r in shown))
        for record in shown:
            _write(failure_tail(self.jobs, record), newline=False)
        if len(shown) == 1:
            return shown[0]
        return JobRecordDict({r.self_id: r for r in shown})

    def _records(self, job_ids: list[str]) -> JobRecord | JobRecordDict:
        records = actions.require_all(self.jobs, job_ids)
        return records[job_ids[0]] if len(records) == 1 else JobRecordDict(records)

    def _progress_text(self, record: JobRecord) -> str:
        last = self.jobs.tail(record.self_id, 1).rstrip("\r\n").rsplit("\r", 1)[-1].strip()
        last = last if len(last) <= 100 else last[:97] + "..."
        return f"{record.self_id} {record.status} · {format_duration(record.duration)} · {last}"

    def _stop(self, args: argparse.Namespace) -> JobRecord | JobRecordDict | None:
        grace = self.stop_grace if args.grace is None else args.grace
        stopped = actions.stop_many(self.jobs, args.job_ids, args.all, grace)
        for record in stopped.values():
            print(summary(record))
        if not stopped:
            print("no active jobs")
            return None
        if len(args.job_ids) == 1:
            return stopped[args.job_ids[0]]
        return stopped

    def _result(self, args: argparse.Namespace) -> Any:
        try:
            return actions.result(self.jobs, args.job_id, args.timeout, sys.stderr.write)
        except KeyboardInterrupt:
            print(f"[stopped waiting for {args.job_id}; the job keeps running]")
            return None

    def _rerun(self, args: argparse.Namespace) -> JobRecord:
        record = actions.rerun(self.jobs, args.job_id, args.env, args.without_env)
        print(summary(record))
        return record

    def _rm(self, args: argparse.Namespace) -> None:
        print(actions.removed_text(actions.remove_many(self.jobs, args.job_ids)))

    def _clean(self, args: argparse.Namespace) -> None:
        print(actions.clean(self.jobs, args.older_than, args.status))

    def _watch(self, args: argparse.Namespace) -> JobDashboard:
        actions.require_all(self.jobs, args.job_ids)
        dashboard = JobDashboard(
            self.jobs,
            args.job_ids or None,
            refresh_interval=self.refresh_interval,
            log_lines=self.log_lines,
            grace=self.stop_grace,
        )
        self.track(dashboard)
        display(dashboard)
        dashboard.mark_displayed()
        return dashboard

    def _help(self, args: argparse.Namespace) -> None:
        if args.topic:
            parser = parsing.parser_for(args.topic)
            if parser is None:
                raise UsageError(f"%job help: no sub-command {args.topic!r}")
            print(parser.format_help())
            return
        settings = "\n".join(
            f"  %config JobMagics.{name} = {getattr(self, name)!r}"
            for name in sorted(self.class_traits(config=True))
        )
        print(f"usage: %job SUBCOMMAND [ARGS]\n\n{parsing.overview()}\n\nSettings (now):\n{settings}")
        print("\n%%job [ID] [--cwd DIR] [-e K=V] [--shell PROGRAM] runs the cell as a job; see %%job?")

    # -- %%job -----------------------------------------------------------------------------------

    @magic_arguments()
    @argument("job_id", nargs="?", metavar="ID", help="the job's id (default: made from the first line)")
    @argument("--cwd", metavar="DIR", help="working directory (default: the kernel's)")
    @argument("-e", "--env", action="append", default=[], metavar="K=V", help="set a variable (repeatable)")
    @argument(
        "--shell",
        metavar="PROGRAM",
        help="what runs the script: bash (default; JobMagics.default_shell), sh, python (this kernel's "
        "interpreter, unbuffered) or any program that takes a script file",
    )
    @cell_magic("job")
    def job_cell(self, line: str, cell: str) -> JobRecord:
        """Run the cell body as a background job's script and return the job's record at once.

        The script is saved beside the job's logs (``<db>/logs/<id>_script.sh`` or ``.py``), so
        ``%job rerun ID`` runs it again and it can be read later. The body is not expanded by IPython.
        """
        args = parse_argstring(self.job_cell, line)
        with user_errors("%%job"):
            record = run_cell(self.jobs, args, cell, self.default_shell)
        print(summary(record))
        return record

    # -- completion ------------------------------------------------------------------------------

    def complete(self, text_until_cursor: str) -> list[str] | None:
        """Completions of the word being typed on a ``%job`` line (also ``x = %job ...``), or None.

        Sub-commands, a sub-command's options, statuses after ``--status``, and job ids: only active
        ones for ``stop``, only ended ones for ``rm`` and ``rerun``. None: not ours to complete.
        """
        return completion.complete(text_until_cursor, self.jobs.ids)

    def matcher(self) -> Any:
        """An IPython completion matcher for ``%job`` lines that hides Python's completions there."""
        return completion.matcher(self.complete)


def _write(text: str, newline: bool = True) -> None:
    sys.stdout.write(text + ("\n" if newline and text and not text.endswith("\n") else ""))
    sys.stdout.flush()
