"""Checking what a submission asks of the queue: group, dependencies, start time, time limit, tags,
limits. Each check returns the value checked or raises ``ValueError`` with a one-line message."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from nodejobs.errors import InvalidInputError
from nodejobs.model.records import validate_job_id

DEFAULT_GROUP = "default"  # unlimited unless set_limit says otherwise: plain runs start at once
_GROUP = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}")
_TAG_TYPES = (str, int, float, bool, type(None))


def check_tag_key(key: Any) -> str:
    """``key`` if it can name a tag (a Python identifier: it becomes a DataFrame column), else
    ``InvalidInputError``."""
    if not isinstance(key, str) or not key.isidentifier() or not key.isascii():
        rule = "identifiers (letters, digits, _; not starting with a digit)"
        raise InvalidInputError(f"tag names must be {rule}, not {key!r}")
    return key


def check_group(group: Any) -> str:
    """A group name: up to 64 letters, digits, ``_ . : -``, not starting with a punctuation mark."""
    if not isinstance(group, str) or not _GROUP.fullmatch(group):
        rule = "up to 64 letters, digits, _ . : - (not starting . : -)"
        raise InvalidInputError(f"invalid group {group!r}: {rule}")
    return group


def check_limit(n: Any) -> int | None:
    """A group limit: a whole number >= 1, or None for unlimited."""
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidInputError(f"a group limit must be a whole number >= 1 (or None: unlimited), not {n!r}")
    return n


def check_after(after: str | Sequence[str] | None) -> list[str]:
    """The ids a job runs after (a single id or several), each a valid id, without repeats."""
    if after is None:
        return []
    ids = [after] if isinstance(after, str) else list(after)
    for job_id in ids:
        validate_job_id(job_id)
    return list(dict.fromkeys(ids))


def start_time(at: Any, moment: datetime | None = None) -> datetime | None:
    """When a job may start: ``at`` is a timezone-aware datetime, seconds from now (>= 0), or text:
    seconds, or an ISO 8601 time with a timezone (``2026-12-02T14:00:00+00:00``, ``...Z``)."""
    if at is None:
        return None
    moment = moment or datetime.now(timezone.utc)
    if isinstance(at, str):
        text = at.strip()
        try:
            at = float(text)
        except ValueError:
            try:
                at = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
            except ValueError:
                raise InvalidInputError(
                    f"--at wants seconds from now or an ISO time with a timezone (2026-12-02T14:00:00Z), "
                    f"not {text!r}"
                ) from None
    if isinstance(at, datetime):
        if at.tzinfo is None or at.tzinfo.utcoffset(at) is None:
            raise InvalidInputError(f"at: {at.isoformat()} has no timezone; give one (e.g. +00:00 or Z)")
        return at.astimezone(timezone.utc)
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at) or at < 0:
        raise InvalidInputError(f"at must be a timezone-aware datetime or seconds >= 0 from now, not {at!r}")
    return moment + timedelta(seconds=at)


def check_timeout(timeout: Any) -> float | None:
    """A time limit in seconds: a number > 0 (``inf`` or None: no limit)."""
    if timeout is None:
        return None
    if isinstance(timeout, str):
        try:
            timeout = float(timeout)
        except ValueError:
            raise InvalidInputError(f"timeout must be seconds > 0, not {timeout!r}") from None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise InvalidInputError(f"timeout must be seconds > 0, not {timeout!r}")
    return None if math.isinf(timeout) else float(timeout)


def check_tags(tags: Any) -> dict[str, Any]:
    """Tags (empty if none): names are identifiers, values str, int, float, bool or None."""
    if not tags:
        return {}
    if not isinstance(tags, dict):
        raise InvalidInputError(f"tags must be a dict of name -> value, not {tags!r}")
    for key, value in tags.items():
        check_tag_key(key)
        if not isinstance(value, _TAG_TYPES) or (isinstance(value, float) and not math.isfinite(value)):
            kinds = "a string, number, bool or None"
            raise InvalidInputError(f"tag {key!r}: a value must be {kinds}, not {value!r}")
    return dict(tags)


def parse_tag(pair: str) -> tuple[str, Any]:
    """``K=V`` from a command line: V as JSON if it reads as a number, bool or null, else the text."""
    key, sep, text = pair.partition("=")
    if not sep:
        raise InvalidInputError(f"--tag wants NAME=VALUE, not {pair!r}")
    check_tag_key(key)
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    if not isinstance(value, _TAG_TYPES):
        value = text
    return key, value
