"""``JobWindow``: which jobs the dashboard shows, kept up to date from the records changed since the last
look (``Jobs.changes``), so a refresh costs what changed, not the history."""

from __future__ import annotations

from nodejobs import JobRecord, Jobs


class JobWindow:
    """The newest ``max_rows`` jobs a status filter lets through (of ``job_ids`` only, if given).

    ``records`` holds them, newest first; ``total`` counts every job in the database; after ``update``,
    ``deleted`` lists the jobs removed since the look before and ``reloaded`` says whether it read the
    window afresh.
    """

    def __init__(self, jobs: Jobs, job_ids: list[str] | None, max_rows: int) -> None:
        self.jobs = jobs
        self.job_ids = job_ids
        self.max_rows = max_rows
        self.records: dict[str, JobRecord] = {}
        self.total = 0
        self.deleted: list[str] = []
        self.reloaded = False
        self._complete = False  # whether records holds every job the filter lets through
        self._loaded: str | None = None  # the filter records was read for (None: not read yet)
        self._seq = 0  # the change number records is up to date with

    def update(self, wanted: str) -> set[str]:
        """Bring ``records`` up to date for the filter ``wanted``; the ids whose records changed."""
        self.deleted, self.reloaded = [], False
        if self._loaded != wanted:
            return self._reload(wanted)
        news = self.jobs.changes(self._seq)
        self._seq, self.total = news.number, news.total
        self.deleted = list(news.deleted)
        for job_id in news.deleted:
            self.records.pop(job_id, None)
        for record in news.changed:
            if self._wanted(record, wanted):
                self.records[record.self_id] = record
            else:
                self.records.pop(record.self_id, None)
        if len(self.records) < self.max_rows and not self._complete:  # some went: read what follows them
            return self._reload(wanted)
        if not news.changed:
            return set()
        ordered = sorted(self.records.values(), key=_newest_first)[: self.max_rows]
        self._complete = self._complete and len(ordered) == len(self.records)
        self.records = {r.self_id: r for r in ordered}
        return {r.self_id for r in news.changed if r.self_id in self.records}

    def _reload(self, wanted: str) -> set[str]:
        """Read the newest ``max_rows`` jobs the filter lets through (one query, limited in SQL)."""
        news = self.jobs.changes(2**62)  # nothing is newer: only the change number and the total
        self._seq, self.total, self._loaded, self.reloaded = news.number, news.total, wanted, True
        status = None if wanted == "all" else wanted
        if self.job_ids is not None:
            found = [self.jobs.get_status(i) for i in self.job_ids]
            records = [r for r in found if r is not None and self._wanted(r, wanted)]
        else:
            records = list(self.jobs.list_status(status=status, order="newest", limit=self.max_rows).values())
        ordered = sorted(records, key=_newest_first)[: self.max_rows]
        self._complete = len(records) < self.max_rows
        self.records = {r.self_id: r for r in ordered}
        return set(self.records)

    def _wanted(self, record: JobRecord, wanted: str) -> bool:
        if self.job_ids is not None and record.self_id not in self.job_ids:
            return False
        if wanted in ("active", "ended"):
            return record.is_active == (wanted == "active")
        return wanted == "all" or record.status == wanted


def _newest_first(record: JobRecord) -> tuple[float, str]:
    started = record.started_at.timestamp() if record.started_at else float("-inf")
    return -started, record.self_id
