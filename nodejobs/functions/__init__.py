"""nodejobs.functions."""
