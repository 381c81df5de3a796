"""Per-job resources a backend with a scheduler takes (Slurm): checked, stored as JSON in the record's
``resources``, given to the backend as options at every (re)start."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from typing import Any

from nodejobs.errors import InvalidInputError

RESOURCE_KEYS = ("cpus", "mem", "time", "gpus", "partition", "slurm_opts")
_MEM = re.compile(r"\d+[KMGT]?", re.IGNORECASE)
_TIME = re.compile(r"(\d+-)?\d+(:\d{1,2}){0,2}|\d+-\d+")  # Slurm's: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S
_WORD = re.compile(r"[A-Za-z0-9_.,:=+-]{1,200}")


def check_resources(given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The resources as stored: ``cpus`` (int >= 1), ``mem`` ("4G"), ``time`` (Slurm's "1:00:00"),
    ``gpus`` (int, or "type:N"), ``partition``, ``slurm_opts`` (more sbatch arguments: a list, or one
    string split as a shell would). ``ValueError`` names a bad one."""
    out: dict[str, Any] = {}
    for key, value in (given or {}).items():
        if key not in RESOURCE_KEYS:
            raise InvalidInputError(f"unknown resource {key!r}; one of: {', '.join(RESOURCE_KEYS)}")
        if value is None:
            continue
        out[key] = _check(key, value)
    return out


def _check(key: str, value: Any) -> Any:
    if key == "cpus":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"cpus must be a whole number >= 1, not {value!r}")
        return value
    if key == "slurm_opts":
        opts = shlex.split(value) if isinstance(value, str) else list(value)
        if not all(isinstance(o, str) and o.startswith("-") for o in opts):
            raise InvalidInputError(f"slurm_opts must be sbatch options such as '--qos=low', not {value!r}")
        return opts
    text = str(value)
    patterns = {"mem": _MEM, "time": _TIME, "gpus": _WORD, "partition": _WORD}
    if isinstance(value, bool) or not patterns[key].fullmatch(text):
        examples = {"mem": "'4G' or '500M'", "time": "'30' (minutes) or '1:00:00' or '2-00:00:00'",
                    "gpus": "1 or 'a100:2'", "partition": "'gpu'"}  # fmt: skip
        raise InvalidInputError(f"{key} must be like {examples[key]}, not {value!r}")
    return text


def dumps(resources: Mapping[str, Any]) -> str | None:
    """Resources as stored in a record (None when there are none)."""
    return json.dumps(dict(resources), sort_keys=True) if resources else None


def loads(text: str | None) -> dict[str, Any]:
    """A record's resources (empty when it has none, or they are unreadable)."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
