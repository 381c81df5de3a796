"""The model: what a job is. Records and their schema, the statuses and their transitions (one
table), ids, and the checked options of a submission. Imports nothing else of nodejobs but ``errors``."""
