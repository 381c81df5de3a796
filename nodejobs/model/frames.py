"""Job records as a pandas DataFrame (``JobRecordDict.to_dataframe``): fixed columns and dtypes, then
one column per tag. pandas is imported when a table is made, never by ``import nodejobs``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from nodejobs.model.options import DEFAULT_GROUP
from nodejobs.model.records import JobRecord
from nodejobs.model.states import JobStatus

DATAFRAME_COLUMNS = (
    "status",
    "exit_code",
    "last_pid",
    "command",
    "cwd",
    "started_at",
    "ended_at",
    "duration",
    "last_update",
    "reason",
    "group",
    "slot",
    "position",
    "cpu_time",
    "max_rss",
)


_DATAFRAME_DTYPES = {
    "status": "string",
    "exit_code": "Int64",
    "last_pid": "Int64",
    "command": "string",
    "cwd": "string",
    "started_at": "datetime64[ns, UTC]",
    "ended_at": "datetime64[ns, UTC]",
    "duration": "timedelta64[ns]",
    "last_update": "datetime64[ns, UTC]",
    "reason": "string",
    "group": "string",
    "slot": "Int64",
    "position": "Int64",
    "cpu_time": "timedelta64[ns]",
    "max_rss": "Int64",
}
_TIME_COLUMNS = ("started_at", "ended_at", "last_update")
_SECONDS_COLUMNS = ("duration", "cpu_time")


def queue_positions(records: Iterable[JobRecord]) -> dict[str, int]:
    """Job id -> 1-based place in its group's queue, for the queued ones among ``records``."""
    queued = sorted(
        (r for r in records if r.status == JobStatus.c_queued),
        key=lambda r: r.submitted_at or datetime.min.replace(tzinfo=timezone.utc),
    )
    places: dict[str, int] = {}
    out = {}
    for record in queued:
        group = record.group or DEFAULT_GROUP
        places[group] = places.get(group, 0) + 1
        out[record.self_id] = places[group]
    return out


def to_dataframe(by_id: Mapping[str, JobRecord]) -> Any:
    """A pandas DataFrame of ``by_id`` (job id -> record) indexed by job id: the same columns and dtypes
    whatever the records hold, even when empty; then one column per tag key (``JobRecordDict.to_dataframe``
    says more)."""
    import pandas as pd

    records = list(by_id.values())
    places = queue_positions(records)
    columns = {}
    for name in DATAFRAME_COLUMNS:
        values: list[Any]
        if name == "position":
            values = [places.get(r.self_id) for r in records]
        else:
            values = [r.duration if name == "duration" else r.get(name) for r in records]
        if name in _SECONDS_COLUMNS:
            column = pd.to_timedelta(pd.Series(values, dtype="float64"), unit="s")
        elif name in _TIME_COLUMNS:
            column = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
        else:
            column = pd.Series(values, dtype=object)
        columns[name] = column.astype(_DATAFRAME_DTYPES[name]).array
    tags = [r.tag_values for r in records]
    for key in sorted({k for t in tags for k in t} - set(columns)):
        columns[key] = pd.Series([t.get(key) for t in tags], dtype=object).infer_objects().array
    return pd.DataFrame(columns, index=pd.Index(list(by_id), name="self_id", dtype="string"))
