"""The store: one SQLite database per directory (records, compare-and-set writes, named queries, the
change feed, listings) and every file of a job (``paths``: the one owner of the file names; ``files``:
reading, tailing, the atomic private write)."""
