"""What the two faces (the ``nodejobs`` CLI and the ``%job`` magics) do with ``Jobs`` beyond one call:
pick, stop, remove and summarise jobs, submit a sweep, set group limits. Faces parse and dispatch;
everything they do to jobs goes through ``Jobs``."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from nodejobs.errors import BadUsage, FunctionError, InvalidInputError, JobNotFoundError, JobStillRunningError
from nodejobs.faces.arguments import after_ids, parse_env, resource_options, tag
from nodejobs.model.listings import JobRecordDict
from nodejobs.model.records import JobFilter, JobRecord

if TYPE_CHECKING:
    import argparse

    from nodejobs.jobs import Jobs


def with_hint(exc: Exception, hint: str) -> str:
    """An error's one-line message, with ``hint`` after a "no such job"."""
    return f"{exc} ({hint})" if isinstance(exc, JobNotFoundError) else str(exc)


def require_all(jobs: Jobs, job_ids: Sequence[str]) -> dict[str, JobRecord]:
    """The records of every id, in order; nothing is returned unless all exist."""
    return {job_id: jobs.require(job_id) for job_id in job_ids}


def select(
    jobs: Jobs, status: str | None = None, limit: int | None = None, since: str | None = None,
    tags: Sequence[str] = (),
) -> JobRecordDict:  # fmt: skip
    """The jobs with ``status`` (a status, ``"active"``, ``"ended"`` or None for all) started ``since``
    with every tag of ``tags`` (``K=V`` words), oldest first; with ``limit`` (not 0) only the newest
    ``limit`` of them."""
    wanted = dict(tag(pair) for pair in tags)
    criteria = JobFilter(tags=wanted) if wanted else None
    if not limit:
        return jobs.list_status(criteria, status=status, since=since)
    newest = jobs.list_status(criteria, status=status, since=since, order="newest", limit=limit)
    return JobRecordDict({i: newest[i] for i in reversed(newest)})


def listing_note(jobs: Jobs, shown: int, limit: int | None, status: str | None = None,
                 since: str | None = None) -> str:  # fmt: skip
    """``"showing the newest 100 of 12,345 jobs (...)"`` when a limit left some out; else ``""``."""
    if not limit or shown < limit:
        return ""
    total = jobs.count(status=status, since=since)
    if total <= shown:
        return ""
    return f"showing the newest {shown:,} of {total:,} jobs (--limit N for more, 0 for all)"


def clean(jobs: Jobs, older_than: str | None = None, status: str | None = None) -> str:
    """Delete ended jobs (``Jobs.clean``); the line saying which."""
    return removed_text(jobs.clean(older_than=older_than, status=status), ended=True)


def stop_many(jobs: Jobs, job_ids: Sequence[str], all_active: bool, grace: float | None) -> JobRecordDict:
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


def remove_many(jobs: Jobs, job_ids: Sequence[str]) -> list[str]:
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


def rerun(jobs: Jobs, job_id: str, env_pairs: Sequence[str] = (), without_env: bool = False) -> JobRecord:
    """Run an ended job again, with ``-e`` values again or ``--without-env`` if it had any."""
    envs = parse_env(env_pairs)
    return jobs.rerun(job_id, envs=envs or None, without_env=without_env)


def result(jobs: Jobs, job_id: str, timeout: float | None, show_traceback: Callable[[str], Any]) -> Any:
    """A function job's return value (``Jobs.result``). If the function raised, its remote traceback
    goes to ``show_traceback`` and the one-line ``FunctionError`` is raised."""
    try:
        return jobs.result(job_id, timeout=timeout)
    except FunctionError as exc:
        show_traceback(exc.remote_traceback)
        raise exc.with_traceback(None) from None


def sweep(jobs: Jobs, args: argparse.Namespace, command: Sequence[str] | str) -> JobRecordDict:
    """Submit the sweep of ``sweep`` arguments: the product of every ``-p NAME=V1,V2`` list."""
    template = command if isinstance(command, str) else " ".join(command)
    if not template.strip():
        raise BadUsage("sweep needs a command template, e.g. -- python train.py --lr {lr}")
    if not args.param:
        raise BadUsage("sweep needs at least one -p NAME=V1,V2")
    axes = []
    for pair in args.param:
        name, sep, values = pair.partition("=")
        if not sep or not values:
            raise BadUsage(f"-p wants NAME=V1,V2,..., not {pair!r}")
        axes.append([tag(f"{name}={value}") for value in values.split(",")])
    params = [dict(combo) for combo in itertools.product(*axes)]
    return jobs.map(template, params, prefix=args.prefix, group=args.group, limit=args.limit,
                    after=after_ids(args), timeout=args.timeout, **resource_options(args))  # fmt: skip


def set_limits(jobs: Jobs, group: str | None, n: str | None) -> dict[str, int]:
    """Set (or with ``n`` None, only show) group limits; every limit afterwards."""
    if group is not None and n is None:
        raise BadUsage("limit wants GROUP N (N a whole number >= 1, or none)")
    if group is not None:
        value: int | None = None
        if n is not None and n.lower() not in ("none", "unlimited"):
            try:
                value = int(n)
            except ValueError:
                raise BadUsage(f"a group limit must be a whole number >= 1 or none, not {n!r}") from None
        try:
            jobs.set_limit(group, value)
        except InvalidInputError as exc:
            raise BadUsage(str(exc)) from None
    return jobs.limits()
