"""``JobMagics``: the ``%job`` line magic and the ``%%job`` cell magic. They parse, call ``Jobs``, display."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from IPython.core.error import TryNext, UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, kwds, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Float, Int, Unicode, observe
from traitlets.config import Configurable

from nodejobs import JobFilter, JobRecord, JobRecordDict, Jobs, NodeJobsError
from nodejobs.logs import remove_if_exists

from . import parsing
from .dashboard import JobDashboard
from .display import Progress, format_duration, summary

log = logging.getLogger(__name__)


@contextlib.contextmanager
def user_errors(prog: str) -> Iterator[None]:
    """Turn nodejobs and OS errors into a one-line ``UsageError`` (no traceback)."""
    try:
        yield
    except UsageError:
        raise
    except (NodeJobsError, ValueError, OSError) as exc:
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
    stop_grace = Float(3.0, help="Seconds from SIGTERM to SIGKILL when stopping a job.").tag(config=True)
    wait_interval = Float(0.5, help="Seconds between %job wait progress updates.").tag(config=True)
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
                self._jobs = Jobs(path, grace=self.stop_grace)
        return self._jobs

    @observe("db_path")
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
        kernel restart loses nothing. Examples::

            %job run python train.py --epochs 3     # returns the record; id made up: train-1
            %job run --id etl -e MODE=full -- ./etl.sh "my file.csv"
            df = %job list                          # a DataFrame indexed by job id
            %job follow train-1                     # stream its output until it ends
            %job watch                              # a live dashboard
        """
        name, rest = ([*line.split(None, 1), ""] if line.strip() else ["help", ""])[:2]
        if name not in parsing.PARSERS:
            raise UsageError(f"%job: unknown sub-command {name!r}; one of: {', '.join(parsing.SUBCOMMANDS)}")
        with user_errors(f"%job {name}"):
            if name == "run":
                return self._run(rest)
            args = parsing.PARSERS[name].parse_words(parsing.split_words(rest, f"%job {name}"))
            if args.help:
                print(parsing.PARSERS[name].format_help())
                return None
            return getattr(self, f"_{name}")(args)

    def _db(self, args: Any) -> str:
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
        envs = parsing.parse_env(args.env, "%job run")
        record = self.jobs.run(command, args.job_id, cwd=_path(args.cwd), envs=envs or None)
        print(summary(record))
        return record

    def _list(self, args: Any) -> Any:
        status = args.status if args.status not in (None, "active", "ended") else None
        records = self.jobs.list_status(JobFilter(status=status) if status else None)
        if args.status in ("active", "ended"):
            want_active = args.status == "active"
            records = JobRecordDict({i: r for i, r in records.items() if r.is_active == want_active})
        return records.to_dataframe()

    def _status(self, args: Any) -> JobRecord:
        return self._record(args.job_id)

    def _logs(self, args: Any) -> None:
        stream = "err" if args.err else "out"
        path = self.jobs.jobdb.log_paths(self._record(args.job_id))[1 if args.err else 0]
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

    def _follow(self, args: Any) -> None:
        self._record(args.job_id)
        ends_line = True
        try:
            for chunk in self.jobs.follow(args.job_id, "err" if args.err else "out", from_start=not args.new):
                _write(chunk, newline=False)
                ends_line = chunk.endswith("\n")
        except KeyboardInterrupt:
            print(f"{'' if ends_line else chr(10)}[stopped following {args.job_id}; the job keeps running]")
            return
        print(f"{'' if ends_line else chr(10)}[{summary(self._record(args.job_id))}]")

    def _wait(self, args: Any) -> JobRecord:
        record = self._record(args.job_id)
        deadline = None if args.timeout is None else time.monotonic() + args.timeout
        progress = Progress()
        try:
            while record.is_active:
                progress.update(self._progress_text(record))
                step = self.wait_interval
                if deadline is not None:
                    step = min(step, deadline - time.monotonic())
                    if step <= 0:
                        progress.finish(self._progress_text(record))
                        raise UsageError(
                            f"%job wait: {args.job_id} still {record.status} after {args.timeout} s"
                        )
                try:
                    record = self.jobs.wait(args.job_id, timeout=step)
                except TimeoutError:
                    record = self._record(args.job_id)
        except KeyboardInterrupt:
            progress.finish(f"stopped waiting for {args.job_id}; the job keeps running")
            return self._record(args.job_id)
        progress.finish(summary(record))
        return record

    def _progress_text(self, record: JobRecord) -> str:
        last = self.jobs.tail(record.self_id, 1).rstrip("\r\n").rsplit("\r", 1)[-1].strip()
        last = last if len(last) <= 100 else last[:97] + "..."
        return f"{record.self_id} {record.status} · {format_duration(record.duration)} · {last}"

    def _stop(self, args: Any) -> JobRecord | JobRecordDict | None:
        grace = self.stop_grace if args.grace is None else args.grace
        if args.all:
            stopped = JobRecordDict()
            for job_id, record in self.jobs.list_status().items():
                if record.is_active:
                    stopped[job_id] = self.jobs.stop(job_id, grace)
                    print(summary(stopped[job_id]))
            if not stopped:
                print("no active jobs")
            return stopped
        if not args.job_id:
            raise UsageError("%job stop: give a job ID or --all")
        self._record(args.job_id)
        record = self.jobs.stop(args.job_id, grace)
        print(summary(record))  # type: ignore[arg-type]
        return record

    def _rerun(self, args: Any) -> JobRecord:
        record = self.jobs.rerun(args.job_id)
        print(summary(record))
        return record

    def _rm(self, args: Any) -> None:
        self._record(args.job_id)
        self.jobs.remove(args.job_id)
        print(f"removed {args.job_id}")

    def _clean(self, args: Any) -> None:
        removed = self.jobs.clean()
        print(f"removed {len(removed)} ended job(s)" + (": " + ", ".join(removed) if removed else ""))

    def _watch(self, args: Any) -> JobDashboard:
        for job_id in args.job_ids:
            self._record(job_id)
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

    def _help(self, args: Any) -> None:
        if args.topic:
            if args.topic not in parsing.PARSERS:
                raise UsageError(f"%job help: no sub-command {args.topic!r}")
            print(parsing.PARSERS[args.topic].format_help())
            return
        settings = "\n".join(
            f"  %config JobMagics.{name} = {getattr(self, name)!r}"
            for name in sorted(self.class_traits(config=True))
        )
        print(f"usage: %job SUBCOMMAND [ARGS]\n\n{parsing.overview()}\n\nSettings (now):\n{settings}")
        print("\n%%job [ID] [--cwd DIR] [-e K=V] [--shell PROGRAM] runs the cell as a job; see %%job?")

    def _record(self, job_id: str) -> JobRecord:
        record = self.jobs.get_status(job_id)
        if record is None:
            raise UsageError(f"%job: no job {job_id!r} in {self.jobs.db_path} (`%job list` shows them)")
        return record

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
            program = parsing.split_words(args.shell or self.default_shell, "%%job")
            if not program:
                raise UsageError("%%job: --shell is empty")
            is_python = os.path.basename(program[0]).startswith("python")
            if program[0] == "python":
                program = [sys.executable, "-u", *program[1:]]
            job_id = args.job_id or self.jobs.new_job_id(_first_command(cell) if not is_python else "python")
            current = self.jobs.get_status(job_id)
            if current is not None and current.is_active:
                raise UsageError(f"%%job: job {job_id!r} is still {current.status} (pid {current.last_pid})")
            script = self.jobs.jobdb.script_path(job_id, ".py" if is_python else ".sh")
            _write_file(script, cell)
            envs = parsing.parse_env(args.env, "%%job")
            record = self.jobs.run([*program, script], job_id, cwd=_path(args.cwd), envs=envs or None)
        print(summary(record))
        return record

    # -- completion ------------------------------------------------------------------------------

    def complete(self, text_until_cursor: str) -> list[str]:
        """Completions of the word being typed after ``%job``: sub-commands, job ids, statuses."""
        words = text_until_cursor.split()
        if not text_until_cursor[-1:].strip():
            words.append("")
        if len(words) <= 2:
            return list(parsing.SUBCOMMANDS)
        subcommand, current = words[1], words[-1]
        if subcommand == "help":
            return list(parsing.SUBCOMMANDS)
        if subcommand == "list" and words[-2] == "--status":
            return list(parsing.STATUS_CHOICES)
        if subcommand in parsing.ID_SUBCOMMANDS and not current.startswith("-"):
            return sorted(self.jobs.jobdb.ids_like(current))
        return []


def complete_job(shell: Any, event: Any) -> list[str]:
    """IPython ``complete_command`` hook for ``%job``."""
    magics = shell.magics_manager.registry.get("JobMagics")
    completions = magics.complete(event.text_until_cursor) if magics is not None else []
    if not completions:
        raise TryNext
    return completions


def _path(path: str | None) -> str | None:
    return os.path.abspath(os.path.expanduser(path)) if path else None


def _write(text: str, newline: bool = True) -> None:
    sys.stdout.write(text + ("\n" if newline and text and not text.endswith("\n") else ""))
    sys.stdout.flush()


def _write_file(path: str, text: str) -> None:
    """Write ``text`` to ``path`` by rename, so a running reader keeps the old file whole."""
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(text if text.endswith("\n") else text + "\n")
        os.replace(temporary, path)
    finally:
        remove_if_exists(temporary)


def _first_command(script: str) -> str:
    """The first line of a shell script that is not blank or a comment (for a readable id)."""
    for line in script.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.strip()
    return "job"
