"""nodejobs.report."""
