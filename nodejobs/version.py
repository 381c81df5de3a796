"""The version of nodejobs (one place; ``nodejobs.__version__`` shows it)."""

__version__ = "0.1.0"
