"""The record and storage names of the original nodejobs (``from nodejobs.jobdb import JobDB, ...``),
kept for code written against it; they live in ``nodejobs.model`` and ``nodejobs.store``."""

from nodejobs.model.listings import JobRecordDict
from nodejobs.model.records import JobFilter, JobRecord
from nodejobs.model.schema import BaseData
from nodejobs.store.db import JobDB

__all__ = ["BaseData", "JobDB", "JobFilter", "JobRecord", "JobRecordDict"]
