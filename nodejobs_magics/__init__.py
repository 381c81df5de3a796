"""IPython extension for nodejobs (built in its own issue)."""
