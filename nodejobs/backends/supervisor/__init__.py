"""nodejobs.backends.supervisor."""
