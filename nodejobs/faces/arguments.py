"""What the faces' parsed arguments mean to ``Jobs``: ``-e K=V``, ``--tag K=V``, ``--err``, and the queue
and resource options of ``run`` and ``sweep`` as ``Jobs.run`` keywords."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from nodejobs.engine.preflight import check_env_name
from nodejobs.errors import BadUsage
from nodejobs.model import options as submission


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """``["K=V", ...]`` as a dict; names follow ``check_env_name``. Anything else is ``BadUsage``."""
    envs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            if not sep:
                raise ValueError
            check_env_name(key)
        except ValueError:
            raise BadUsage(
                f"-e wants NAME=VALUE, NAME of letters, digits and _ not starting with a digit; not {pair!r}"
            ) from None
        envs[key] = value
    return envs


def tag(pair: str) -> tuple[str, Any]:
    """A ``K=V`` word as a tag (``parse_tag``); anything else is ``BadUsage``."""
    try:
        return submission.parse_tag(pair)
    except ValueError as exc:
        raise BadUsage(str(exc)) from None


def log_stream(err: bool) -> str:
    """The log stream an ``--err`` flag chooses: ``"err"`` or ``"out"``."""
    return "err" if err else "out"


def after_ids(args: argparse.Namespace) -> list[str] | None:
    """The ids of every ``--after`` (each may list several, comma-separated), or None."""
    return [i for a in args.after for i in a.split(",") if i] or None


def queue_options(args: argparse.Namespace) -> dict[str, Any]:
    """``Jobs.run`` keywords from the queue options of ``run`` (checked by ``run`` itself)."""
    options: dict[str, Any] = {"after": after_ids(args), "at": args.at, "timeout": args.timeout,
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
