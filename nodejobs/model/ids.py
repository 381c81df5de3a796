"""Readable job ids: a short word for a command, and the ids and commands of a sweep."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Sequence
from typing import Any

from nodejobs.errors import InvalidInputError
from nodejobs.model.options import check_tags
from nodejobs.model.records import validate_job_id


def readable_base(command: str | Sequence[str]) -> str:
    """A short word for a command, e.g. ``python train.py`` -> ``train``, ``sleep 5`` -> ``sleep``."""
    try:
        words = shlex.split(command) if isinstance(command, str) else [str(w) for w in command]
    except ValueError:  # unbalanced quotes: the shell will say so; the id need not
        words = str(command).split()
    words = [w for w in words if "=" not in w.split("/")[0]] or ["job"]
    program = os.path.basename(words[0])
    if re.fullmatch(r"python[0-9.]*|bash|sh|node|Rscript", program):
        program = _script_name(words[1:]) or program
    base = re.sub(r"[^A-Za-z0-9_]+", "-", program).strip("-")[:20]
    return base or "job"


def _script_name(args: Sequence[str]) -> str | None:
    """The script an interpreter runs: ``-u train.py`` -> train, ``-m pkg.mod`` -> mod, ``-c …`` -> None."""
    for i, word in enumerate(args):
        if word == "-m":
            return args[i + 1].rsplit(".", 1)[-1] if i + 1 < len(args) else None
        if word == "-c":
            return None
        if not word.startswith("-"):
            return os.path.splitext(os.path.basename(word))[0]
    return None


def numbered(base: str, taken: Iterable[str]) -> str:
    """``<base>-<n>`` with the smallest ``n`` >= 1 not ``taken``, e.g. ``train-3``."""
    used = set(taken)
    n = 1
    while f"{base}-{n}" in used:
        n += 1
    return f"{base}-{n}"


def sweep_id(base: str, params: dict[str, Any]) -> str:
    """A readable id for one parameter set of a sweep: ``train-lr0.01-bs32``."""
    parts = [re.sub(r"[^A-Za-z0-9_.=+-]+", "_", f"{k}{v}").replace("..", "_") for k, v in params.items()]
    return "-".join([base, *parts]) if parts else base


def sweep(template: str, params: list[dict[str, Any]], base: str) -> list[tuple[str, str, dict[str, Any]]]:
    """``(job id, command, params)`` of each parameter set of a sweep: the command is
    ``template.format(**params)`` (values shell-quoted), the id ``sweep_id(base, params)``; the params
    are checked as tags. ``ValueError`` if any cannot be made, or two ids are the same."""
    planned = []
    for p in params:
        for key in p:
            check_tags({key: p[key]})
        try:
            command = template.format(**{k: shlex.quote(str(v)) for k, v in p.items()})
        except (KeyError, IndexError, ValueError) as exc:
            why = f"map: template {template!r} cannot be filled from {p!r}: {exc!r}"
            raise InvalidInputError(why) from None
        planned.append((sweep_id(base, p), command, p))
    ids = [i for i, _, _ in planned]
    if len(set(ids)) != len(ids):
        raise InvalidInputError("map: two parameter sets give the same job id; give distinct params")
    for job_id in ids:
        validate_job_id(job_id)
    return planned
