"""IPython extension for nodejobs: ``%load_ext nodejobs_magics`` gives ``%job``, ``%%job`` and a dashboard.

Loading opens this kernel's ``Jobs`` (one per kernel; its reaper thread records job ends at once);
unloading closes it and every dashboard ``%job watch`` opened. Running jobs are never touched.
"""

from __future__ import annotations

from typing import Any

from .dashboard import JobDashboard
from .magics import JobMagics, complete_job

__all__ = ["JobDashboard", "JobMagics", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%job``/``%%job`` and tab completion; replaces an instance loaded before."""
    _unregister(ipython)
    magics = JobMagics(ipython)
    ipython.register_magics(magics)
    ipython.set_hook("complete_command", complete_job, str_key="%job")


def unload_ipython_extension(ipython: Any) -> None:
    """Close the dashboards and the reaper thread, and remove the magics and their completion."""
    _unregister(ipython)


def _unregister(ipython: Any) -> None:
    manager = ipython.magics_manager
    magics = manager.registry.pop("JobMagics", None)
    if magics is not None:
        magics.close()
        for kind in ("line", "cell"):
            if getattr(manager.magics[kind].get("job"), "__self__", None) is magics:
                del manager.magics[kind]["job"]
        if magics in ipython.configurables:
            ipython.configurables.remove(magics)
    dispatcher = ipython.strdispatchers.get("complete_command")
    chain = dispatcher.strs.get("%job") if dispatcher is not None else None
    if chain is not None:
        chain.chain = [(p, f) for p, f in chain.chain if getattr(f, "__func__", None) is not complete_job]
