"""The live dashboard of ``%job watch``: ``JobDashboard`` (widget), which jobs it shows (window), their
rows (rows) and the selected job's output (logpane)."""

from nodejobs_magics.dashboard.widget import JobDashboard

__all__ = ["JobDashboard"]
