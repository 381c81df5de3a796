"""``JobUsage``: what each running job uses now (``Jobs.usage()``, ``%job top``, ``nodejobs top``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nodejobs.backends.base import Usage
from nodejobs.model.records import JobRecord
from nodejobs.report.wording import format_duration

__all__ = ["TOP_COLUMNS", "JobUsage", "JobUsageDict", "format_bytes"]

TOP_COLUMNS = {  # column -> dtype, the same whatever the jobs (also when there are none)
    "status": "string",
    "elapsed": "timedelta64[ns]",
    "cpu_percent": "float64",
    "rss": "Int64",
    "max_rss": "Int64",
    "threads": "Int64",
    "processes": "Int64",
    "cpu_time": "timedelta64[ns]",
}


@dataclass(frozen=True)
class JobUsage:
    """One running job: its record's status and age, and its processes' usage (``Usage``)."""

    job_id: str
    status: str | None
    elapsed: float | None  # seconds since it started
    cpu_percent: float  # % of one core since the previous sample
    rss: int  # bytes, resident, the whole tree
    max_rss: int  # the largest rss seen so far (recorded in the job's record)
    threads: int
    processes: int
    cpu_time: float  # seconds, of the processes alive now

    @classmethod
    def of(cls, record: JobRecord, used: Usage) -> JobUsage:
        return cls(
            record.self_id, record.status, record.duration, used.cpu_percent, used.rss,
            max(used.rss, record.max_rss or 0), used.threads, used.processes, used.cpu_time,
        )  # fmt: skip


def format_bytes(count: int | None) -> str:
    """``812 KB``, ``201 MB``, ``3.2 GB``; empty for None."""
    if count is None:
        return ""
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if count >= size:
            value = count / size
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{count} B"


class JobUsageDict(dict):
    """Job id -> ``JobUsage``, newest job first."""

    def to_dataframe(self) -> Any:
        """A DataFrame indexed by job id, columns ``TOP_COLUMNS`` with their dtypes (even when empty)."""
        import pandas as pd

        rows = list(self.values())
        columns = {}
        for name, dtype in TOP_COLUMNS.items():
            values = [getattr(u, name) for u in rows]
            if dtype.startswith("timedelta"):
                column = pd.to_timedelta(pd.Series(values, dtype="float64"), unit="s")
            else:
                column = pd.Series(values, dtype=object)
            columns[name] = column.astype(dtype).array
        return pd.DataFrame(columns, index=pd.Index(list(self.keys()), name="self_id", dtype="string"))

    def table(self) -> str:
        """A text table (for the CLI): id, status, elapsed, CPU %, RSS, peak RSS, threads."""
        header = ("ID", "STATUS", "ELAPSED", "CPU%", "RSS", "PEAK", "THREADS")
        lines = [header] + [
            (u.job_id, u.status or "-", format_duration(u.elapsed), f"{u.cpu_percent:.0f}",
             format_bytes(u.rss), format_bytes(u.max_rss), str(u.threads))
            for u in self.values()
        ]  # fmt: skip
        widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines)

    def _repr_html_(self) -> str:
        return self.to_dataframe()._repr_html_()
