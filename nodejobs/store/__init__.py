"""nodejobs.store."""
