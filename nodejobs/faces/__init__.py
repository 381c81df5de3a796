"""nodejobs.faces."""
