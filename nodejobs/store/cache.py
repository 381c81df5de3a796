"""``RecordCache``: records a ``JobDB`` has read, by their change number, so a repeated listing reads
only each row's number and the rows written since.

A change number (``seq``) names one version of one record: every write gives the row a new one, so a
cached record is never stale, only unused. The cache holds at most ``limit`` records (the oldest read
go first) and hands out copies, so a caller changing a record changes nothing here. ``gc_paused``
keeps the garbage collector out of a listing's way.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterable, Iterator

from nodejobs.model.records import JobRecord

CACHE_LIMIT = 20_000  # records; a listing of more reads the rest from the database each time

_new_record = JobRecord.__new__


class RecordCache:
    """Change number -> record, bounded."""

    def __init__(self, limit: int = CACHE_LIMIT) -> None:
        self.limit = limit
        self._records: dict[int, JobRecord] = {}
        self._lock = threading.Lock()

    def missing(self, numbers: Iterable[int | None]) -> list[int | None]:
        """The numbers not cached (None, a row never numbered, is always missing)."""
        records = self._records
        return [n for n in numbers if n is None or n not in records]

    def put(self, number: int | None, record: JobRecord) -> None:
        if number is None or self.limit <= 0:
            return
        with self._lock:
            self._records[number] = record
            if len(self._records) > self.limit:
                for old in list(self._records)[: len(self._records) - self.limit]:
                    del self._records[old]

    def copy(self, number: int) -> JobRecord | None:
        """A copy of the record of change ``number``, or None if it is not (or no longer) cached."""
        cached = self._records.get(number)
        if cached is None:
            return None
        record = _new_record(JobRecord)
        dict.update(record, cached)
        return record


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a listing makes thousands of records (none of them cyclic):
    collections would walk every object alive, again and again (the listing is then up to 1/3 faster)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
