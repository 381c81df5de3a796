"""What the faces share for the queue: ``run``'s queue options, ``sweep``, ``limit``, ``--tag`` words."""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence
from typing import Any

from nodejobs.errors import BadUsage
from nodejobs.model import options as submission
from nodejobs.model.records import JobRecordDict


def tag(pair: str) -> tuple[str, Any]:
    try:
        return submission.parse_tag(pair)
    except ValueError as exc:
        raise BadUsage(str(exc)) from None


def queue_options(args: argparse.Namespace) -> dict[str, Any]:
    """``Jobs.run`` keywords from the queue options of ``run`` (checked by ``run`` itself)."""
    options: dict[str, Any] = {"after": [i for a in args.after for i in a.split(",") if i] or None,
                               "at": args.at, "timeout": args.timeout,
                               "tags": dict(tag(pair) for pair in args.tag) or None}  # fmt: skip
    if args.group is not None:
        options["group"] = args.group
    return {**options, **resource_options(args)}


def resource_options(args: argparse.Namespace) -> dict[str, Any]:
    """``Jobs.run`` resource keywords from ``--cpus``, ``--mem``, ... ``--slurm-opt`` (those given)."""
    given = {key: getattr(args, key, None) for key in ("cpus", "mem", "time", "gpus", "partition")}
    if getattr(args, "slurm_opt", None):
        given["slurm_opts"] = list(args.slurm_opt)
    return {key: value for key, value in given.items() if value is not None}


def sweep(jobs: Any, args: argparse.Namespace, command: Sequence[str] | str) -> JobRecordDict:
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
    after = [i for a in args.after for i in a.split(",") if i] or None
    return jobs.map(template, params, prefix=args.prefix, group=args.group, limit=args.limit, after=after,
                    timeout=args.timeout, **resource_options(args))  # fmt: skip


def set_limits(jobs: Any, group: str | None, n: str | None) -> dict[str, int]:
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
        except ValueError as exc:
            raise BadUsage(str(exc)) from None
    return jobs.limits()
