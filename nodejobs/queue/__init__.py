"""nodejobs.queue."""
