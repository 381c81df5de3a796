"""``JobRecordDict``: job records as a listing gives them, id -> record in order, shown as a pandas
DataFrame (``frames``; pandas is imported only when the first table is made)."""

from __future__ import annotations

from typing import Any

from nodejobs.model.frames import to_dataframe
from nodejobs.model.records import JobRecord


class JobRecordDict(dict):
    """Job id -> ``JobRecord``, in the order the database listed them."""

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(value, JobRecord):
            value = JobRecord(value)
        super().__setitem__(key, value)

    def to_dataframe(self) -> Any:
        """A pandas DataFrame indexed by job id: the same columns and dtypes whatever the records hold
        (``string``, ``Int64``, ``datetime64[ns, UTC]``, ``timedelta64[ns]``), even when empty; then one
        column per tag key (dtype inferred; missing values NA), unless a built-in column has that name.
        ``cpu_time`` and ``duration`` are timedeltas, ``max_rss`` bytes."""
        return to_dataframe(self)

    def _repr_html_(self) -> str:
        return self.to_dataframe()._repr_html_()
