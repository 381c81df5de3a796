"""nodejobs.model."""
