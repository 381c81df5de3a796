"""Backends run a job's processes behind one interface (``base.Backend``): ``local`` (this machine,
``local/``), ``slurm`` (a Slurm cluster, ``slurm/``) and ``fake`` (in memory, for tests, ``fake.py``);
the first two run the same supervisor (``supervisor/``)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from nodejobs.backends.base import Backend, Capabilities, Handle, JobSpec, Observation, SubmitError
from nodejobs.errors import InvalidInputError

__all__ = [
    "BACKENDS", "Backend", "Backends", "Capabilities", "Handle", "JobSpec", "Observation", "SubmitError",
]  # fmt: skip


def _local(reaper: bool) -> Backend:
    from nodejobs.backends.local.backend import LocalBackend

    return LocalBackend(reaper=reaper)


def _slurm(reaper: bool) -> Backend:
    from nodejobs.backends.slurm.backend import SlurmBackend

    return SlurmBackend()


BACKENDS: dict[str, Callable[[bool], Backend]] = {"local": _local, "slurm": _slurm}


def check_backend_name(name: str) -> str:
    """``name`` if a backend of that name exists, else an ``InvalidInputError`` listing them."""
    if name not in BACKENDS:
        raise InvalidInputError(f"unknown backend {name!r}; one of: {', '.join(sorted(BACKENDS))}")
    return name


class Backends:
    """The backend instances of one ``Jobs``, made on first use: one per name, observing that
    backend's jobs (a database may hold jobs of several backends)."""

    def __init__(self, reaper: bool = True, given: Backend | None = None) -> None:
        self._reaper = reaper
        self._made: dict[str, Backend] = {given.name: given} if given is not None else {}
        self._lock = threading.Lock()

    def __call__(self, name: str) -> Backend:
        with self._lock:
            if name not in self._made:
                self._made[check_backend_name(name)] = BACKENDS[name](self._reaper)
            return self._made[name]

    def made(self) -> list[Backend]:
        with self._lock:
            return list(self._made.values())

    def close(self) -> None:
        for backend in self.made():
            backend.close()
