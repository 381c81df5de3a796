"""The batch scripts and ``sbatch`` options of the Slurm backend (``backend.py``): one job's script is
the supervisor's own text with the job's arguments; an array's script picks each task's arguments,
environment and logs by ``SLURM_ARRAY_TASK_ID``."""

from __future__ import annotations

import functools
import json
import math
import os
import shlex
import time
from collections.abc import Sequence

from nodejobs.backends.base import JobSpec
from nodejobs.backends.supervisor import SUPERVISOR, TIMER_SUFFIXES, supervisor_args

PER_JOB_ENV = ("NODEJOBS_JOB_ID", "NODEJOBS_SLOT")  # set by each array task's own lines
RESOURCE_FLAGS = {"cpus": "--cpus-per-task", "mem": "--mem", "time": "--time", "gpus": "--gpus",
                  "partition": "--partition"}  # fmt: skip
# The files a Slurm job keeps beside its exit file: batch script, go/no-go, timer marks, cancel note.
SIDE_SUFFIXES = (".sbatch", ".go", ".nogo", *TIMER_SUFFIXES, ".cancel")


def batch_script(spec: JobSpec, grace: float) -> str:
    """The batch script of ``spec``: the supervisor's own text, run with the job's arguments."""
    header = f"#!/bin/sh\n# nodejobs job {spec.job_id} (run {spec.run_id}), by nodejobs' Slurm backend\n"
    return f"{header}{_set_arguments(spec, grace)}\n{_supervisor_text()}"


def array_script(specs: Sequence[JobSpec], grace: float) -> str:
    """The batch script of an array: task N sets job N's arguments, environment and logs, then runs the
    supervisor's own text as one job's script does."""
    lines = [f"#!/bin/sh\n# nodejobs array of {len(specs)} jobs, by nodejobs' Slurm backend",
             'case "${SLURM_ARRAY_TASK_ID:-}" in']  # fmt: skip
    for i, spec in enumerate(specs):
        own = [k for k in PER_JOB_ENV if k in spec.env]
        exports = "".join(f"{k}={shlex.quote(spec.env[k])}; export {k}; " for k in own)
        files = f"nodejobs_out={shlex.quote(spec.out_path)}; nodejobs_err={shlex.quote(spec.err_path)}"
        lines.append(f"{i}) {files}; {exports}{_set_arguments(spec, grace)} ;;")
    lines.append('*) echo "nodejobs: no task ${SLURM_ARRAY_TASK_ID:-} in this array" >&2; exit 125 ;;')
    lines += ["esac", 'exec >>"$nodejobs_out" 2>>"$nodejobs_err"']
    return "\n".join(lines) + "\n" + _supervisor_text()


def _set_arguments(spec: JobSpec, grace: float) -> str:
    """The shell line that gives the supervisor's text its arguments: held by the job's go-file, no
    ``on_end`` (what runs on a compute node never touches the database)."""
    return f"set -- {shlex.join(supervisor_args(spec, grace, spec.exit_path, None))}"


@functools.cache
def _supervisor_text() -> str:
    with open(SUPERVISOR) as f:
        return f.read()


def sbatch_args(spec: JobSpec) -> list[str]:
    """sbatch's options for ``spec``: names, files, directory, resources, dependency and start time.
    ``on_end`` is not passed: what runs on a compute node never touches the database."""
    return [
        f"--job-name={spec.job_id}", f"--comment=nodejobs {spec.job_id} run {spec.run_id}",
        f"--output={spec.out_path}", f"--error={spec.err_path}", *shared_args(spec),
    ]  # fmt: skip


def array_args(specs: Sequence[JobSpec]) -> list[str]:
    """sbatch's options that make ``specs`` one array (each task's script writes its own logs)."""
    first, last = specs[0].job_id, specs[-1].job_id
    name = os.path.commonprefix([first, last]).rstrip("-_") or first  # noqa: RUF071 -- ids, not paths
    return [f"--array=0-{len(specs) - 1}", f"--job-name={name}",
            f"--comment=nodejobs array of {len(specs)}: {first} .. {last}", "--output=/dev/null",
            "--error=/dev/null"]  # fmt: skip


def shared_args(spec: JobSpec) -> list[str]:
    """sbatch's options that jobs alike (a sweep) share: directory, resources, dependency, start time."""
    args = ["--open-mode=append", f"--chdir={spec.cwd}", "--export=ALL"]
    options = spec.options
    for key, flag in RESOURCE_FLAGS.items():
        if options.get(key) is not None:
            args.append(f"{flag}={options[key]}")
    if options.get("after"):
        args.append("--dependency=afterok:" + ":".join(options["after"]))
    if options.get("begin") is not None:
        args.append(f"--begin=now+{max(0, math.ceil(options['begin'] - time.time()))}")
    args.extend(options.get("slurm_opts") or ())
    return args


def array_key(spec: JobSpec) -> str:
    """What jobs of one array must share: everything but their command, id, run and files."""
    env = {k: v for k, v in spec.env.items() if k not in PER_JOB_ENV}
    shared = [spec.cwd, spec.options, env, spec.keep_leftovers, spec.timeout]
    return json.dumps(shared, sort_keys=True, default=str)


def side_files(exit_path: str) -> list[str]:
    """The files a Slurm job keeps beside its exit file (script, go/no-go, marks)."""
    return [exit_path + suffix for suffix in SIDE_SUFFIXES]
