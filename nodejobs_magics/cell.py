"""``%%job``: a cell's body run as a background job's script, saved beside the job's logs."""

from __future__ import annotations

import argparse
import os
import sys

from IPython.core.error import UsageError

from nodejobs import JobRecord, Jobs
from nodejobs.faces.arguments import parse_env
from nodejobs.store.files import write_private
from nodejobs_magics import parsing


def run_cell(jobs: Jobs, args: argparse.Namespace, cell: str, default_shell: str) -> JobRecord:
    """Save ``cell`` as the script of job ``args.job_id`` (default: an id from its first command) and
    start it with ``--shell`` (default: ``default_shell``); its record."""
    program = parsing.split_words(args.shell or default_shell, "%%job")
    if not program:
        raise UsageError("%%job: --shell is empty")
    is_python = os.path.basename(program[0]).startswith("python")
    if program[0] == "python":
        program = [sys.executable, "-u", *program[1:]]
    base = first_command(cell) if not is_python else "python"
    job_id = args.job_id or jobs.new_job_id(base)
    current = jobs.get_status(job_id)
    if current is not None and current.is_active:
        raise UsageError(f"%%job: job {job_id!r} is still {current.status} (pid {current.last_pid})")
    envs = parse_env(args.env)
    script = jobs.script_path(job_id, ".py" if is_python else ".sh")
    write_script(script, cell)
    return jobs.run([*program, script], job_id, cwd=parsing.path(args.cwd), envs=envs or None)


def first_command(script: str) -> str:
    """The first line of a shell script that is not blank or a comment (for a readable id)."""
    for line in script.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.strip()
    return "job"


def write_script(path: str, text: str) -> None:
    """Write ``text`` to ``path`` by rename, so a running reader keeps the old file whole."""
    write_private(path, text if text.endswith("\n") else text + "\n")
