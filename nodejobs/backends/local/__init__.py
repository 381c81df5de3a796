"""nodejobs.backends.local."""
