"""nodejobs.engine."""
