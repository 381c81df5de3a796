"""``JobQuery``: which job records to read — filters, order and limit, all done in SQL by ``JobDB``.

Criteria combine with AND: equality on any field (a ``JobFilter``), a set of statuses (``"active"`` and
``"ended"`` name the two groups), an id glob or prefix, and a range of start times. Times are given as a
``datetime``, a ``timedelta`` or a number of seconds (that long ago), or text: ``"30d"``, ``"2h"``,
``"15m"``, ``"90s"`` (ago) or an ISO date.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from nodejobs.errors import InvalidInputError
from nodejobs.model.options import check_tag_key
from nodejobs.model.records import JobFilter
from nodejobs.model.states import ACTIVE_STATUSES, FINAL_STATUSES, JobStatus

__all__ = ["ORDERS", "JobQuery", "parse_age", "parse_statuses", "parse_when"]

ORDERS = ("oldest", "newest")
_AGE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*", re.I)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_GLOB_SPECIAL = re.compile(r"([*?\[])")

TimeSpec = datetime | timedelta | float | int | str


def parse_age(value: timedelta | float | int | str) -> timedelta:
    """A length of time: a ``timedelta``, seconds, or ``"30d"``, ``"2h"``, ``"15m"``, ``"90s"``, ``"1w"``."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _AGE.fullmatch(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "s").lower()]
    else:
        raise InvalidInputError(f"expected an age such as 30d, 12h, 15m or 90s, not {value!r}")
    if not seconds >= 0 or seconds == float("inf"):
        raise InvalidInputError(f"expected an age >= 0, not {value!r}")
    return timedelta(seconds=seconds)


def parse_when(value: TimeSpec) -> datetime:
    """A moment: a ``datetime`` (naive: UTC), an ISO date, or an age (``parse_age``): that long ago."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
    if isinstance(value, str) and not _AGE.fullmatch(value):
        try:
            return parse_when(datetime.fromisoformat(value))
        except ValueError:
            wanted = "a time (ISO date) or an age such as 30d"
            raise InvalidInputError(f"expected {wanted}, not {value!r}") from None
    return datetime.now(timezone.utc) - parse_age(value)


def parse_statuses(status: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """A status, ``"active"``, ``"ended"`` or several of these, as a sorted tuple; None for any."""
    if status is None:
        return None
    wanted = [status] if isinstance(status, str) else list(status)
    out: set[str] = set()
    for name in wanted:
        if name == "active":
            out.update(ACTIVE_STATUSES)
        elif name == "ended":
            out.update(FINAL_STATUSES)
        elif name in JobStatus.values():
            out.add(name)
        else:
            allowed = ", ".join(["active", "ended", *sorted(JobStatus.values())])
            raise InvalidInputError(f"unknown status {name!r}; one of: {allowed}")
    return tuple(sorted(out))


@dataclass(frozen=True)
class JobQuery:
    """Criteria, order and limit of a listing; ``where()`` is its SQL."""

    fields: tuple[tuple[str, Any], ...] = ()  # (field, value) pairs matched for equality
    statuses: tuple[str, ...] | None = None
    id_glob: str | None = None
    since: datetime | None = None  # started at or after
    until: datetime | None = None  # started before
    ended_before: datetime | None = None  # ended (or, with no end time, last changed) before
    order: str = "oldest"
    limit: int | None = None

    @classmethod
    def make(
        cls, filter: JobFilter | dict | None = None, *, status: str | Iterable[str] | None = None,
        id_glob: str | None = None, id_prefix: str | None = None, since: TimeSpec | None = None,
        until: TimeSpec | None = None, older_than: timedelta | float | str | None = None,
        order: str = "oldest", limit: int | None = None,
    ) -> JobQuery:  # fmt: skip
        """Validate the criteria (a ``ValueError`` naming the bad one) and build the query."""
        if filter is not None and not isinstance(filter, JobFilter):
            filter = JobFilter(filter)
        if order not in ORDERS:
            raise InvalidInputError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise InvalidInputError(f"limit must be a whole number >= 0, not {limit!r}")
        if id_glob is not None and id_prefix is not None:
            raise InvalidInputError("give id_glob or id_prefix, not both")
        if id_prefix is not None:
            id_glob = _GLOB_SPECIAL.sub(r"[\1]", id_prefix) + "*"
        if id_glob is not None and (not isinstance(id_glob, str) or "\x00" in id_glob):
            raise InvalidInputError(f"id_glob must be a text pattern, not {id_glob!r}")
        cutoff = None if older_than is None else datetime.now(timezone.utc) - parse_age(older_than)
        return cls(
            fields=tuple((k, v) for k, v in (filter or {}).items() if v is not None),
            statuses=parse_statuses(status),
            id_glob=id_glob,
            since=None if since is None else parse_when(since),
            until=None if until is None else parse_when(until),
            ended_before=cutoff,
            order=order,
            limit=limit,
        )

    def where(self) -> tuple[str, list[Any]]:
        """``("WHERE ...", params)`` (empty text for no criteria); values are bound, never inlined."""
        clauses: list[str] = []
        params: list[Any] = []
        for name, value in self.fields:
            if name == "tags":  # a dict: jobs having every one of these tags with that value
                if not isinstance(value, dict):
                    raise InvalidInputError(f"JobFilter.tags: expected a dict of tags, not {value!r}")
                for key, tag in value.items():
                    check_tag_key(key)
                    clauses.append(f"json_extract(tags, '$.{key}') IS ?")
                    params.append(int(tag) if isinstance(tag, bool) else tag)
                continue
            clauses.append(f'"{name}" = ?')  # quoted: ``group`` is an SQL keyword
            params.append(value.timestamp() if isinstance(value, datetime) else value)
        if self.statuses is not None:
            clauses.append(f"status IN ({', '.join('?' * len(self.statuses))})" if self.statuses else "0")
            params.extend(self.statuses)
        if self.id_glob is not None:
            clauses.append("self_id GLOB ?")
            params.append(self.id_glob)
        if self.since is not None:
            clauses.append("started_at >= ?")
            params.append(self.since.timestamp())
        if self.until is not None:
            clauses.append("started_at < ?")
            params.append(self.until.timestamp())
        if self.ended_before is not None:
            clauses.append("COALESCE(ended_at, last_update) < ?")
            params.append(self.ended_before.timestamp())
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params

    def tail(self) -> tuple[str, list[Any]]:
        """``ORDER BY ... [LIMIT ?]`` and its parameter: by start time (a queued job: its submission),
        ties by last change."""
        direction = " DESC" if self.order == "newest" else ""
        # Ties (records without a start time) in the order of their last change: the index covers it.
        sql = f"ORDER BY coalesce(started_at, submitted_at){direction}, seq{direction}"
        if self.limit is None:
            return sql, []
        return sql + " LIMIT ?", [self.limit]
