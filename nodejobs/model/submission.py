"""``Submission``: the options of one job submission, checked once where they are given, carried to
the engine, and turned into record fields (JSON where the record stores JSON) where the record is made."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from nodejobs.errors import InvalidInputError, MissingEnvError
from nodejobs.model import options
from nodejobs.model.records import JobRecord, validate_job_id
from nodejobs.model.resources import check_resources
from nodejobs.model.resources import dumps as dump_resources


@dataclass(frozen=True)
class Submission:
    """What a job is submitted with, besides its command and id; every value checked.

    Made by ``make`` (which checks); the plain constructor takes values as they are, and its
    defaults are those of the original nodejobs' ``run``: no group, no queue features.
    """

    backend: str = "local"
    group: str | None = None  # None: recorded without a group (the original nodejobs' jobs)
    after: tuple[str, ...] = ()  # the ids it runs after
    start_at: datetime | None = None
    timeout: float | None = None  # seconds
    tags: Mapping[str, Any] = field(default_factory=dict)  # name -> value
    resources: Mapping[str, Any] = field(default_factory=dict)  # as ``check_resources`` returns them
    envs: Mapping[str, str] = field(default_factory=dict)  # more environment, values never stored
    cwd: str | None = None  # absolute; None: the working directory when it starts
    keep_leftovers: bool = False
    call: str | None = None  # a function job's call file
    label: str | None = None  # what the record shows as its command, if not the command
    logdir: str | None = None  # absolute; None: the database's
    logfile: str | None = None  # the base name of its log files; None: the job's id
    backend_options: Mapping[str, Any] | None = None  # what its backend takes over (``handoff.plan``)

    @classmethod
    def make(
        cls,
        *,
        backend: str = "local",
        group: str = options.DEFAULT_GROUP,
        after: str | Sequence[str] | None = None,
        at: datetime | float | str | None = None,
        timeout: float | None = None,
        tags: Mapping[str, Any] | None = None,
        resources: Mapping[str, Any] | None = None,
        envs: Mapping[str, Any] | None = None,
        cwd: str | None = None,
        keep_leftovers: bool = False,
        call: str | None = None,
        label: str | None = None,
    ) -> Submission:
        """A checked submission from the options of ``Jobs.run`` (``ValueError`` names a bad one)."""
        return cls(
            backend=backend, group=options.check_group(group), start_at=options.start_time(at),
            timeout=options.check_timeout(timeout), tags=options.check_tags(tags),
            after=tuple(options.check_after(after)), resources=check_resources(resources),
            envs=environment(envs), cwd=absolute(cwd), keep_leftovers=keep_leftovers, call=call, label=label,
        )  # fmt: skip

    @classmethod
    def plain(
        cls,
        envs: Mapping[str, Any] | None = None,
        cwd: str | None = None,
        logdir: str | None = None,
        logfile: str | None = None,
    ) -> Submission:
        """A checked submission of the original nodejobs' ``run``: no group, no queue features."""
        return cls(
            envs=environment(envs), cwd=absolute(cwd), logdir=os.path.abspath(logdir) if logdir else None,
            logfile=validate_job_id(logfile) if logfile else None,
        )  # fmt: skip

    def with_defaults(self, defaults: Mapping[str, Any], takes_resources: bool) -> Submission:
        """This submission on a backend that takes resources (its own over ``defaults``) or takes none
        (``ValueError`` if it asks for some)."""
        if self.resources and not takes_resources:
            names = ", ".join(self.resources)
            raise InvalidInputError(f"{names}: the {self.backend} backend takes no resources (slurm does)")
        return replace(self, resources={**defaults, **self.resources} if takes_resources else {})

    def record_fields(self) -> dict[str, Any]:
        """The fields of the job's record this submission sets, as stored."""
        fields: dict[str, Any] = {
            "backend": self.backend, "group": self.group, "start_at": self.start_at, "timeout": self.timeout,
            "tags": json.dumps(dict(self.tags), sort_keys=True) if self.tags else None,
            "resources": dump_resources(self.resources), "call": self.call,
            "env_keys": ",".join(sorted(self.envs)) or None,
        }  # fmt: skip
        if self.after:
            fields["after"] = json.dumps(list(self.after))
        return fields


def environment(envs: Mapping[str, Any] | None) -> dict[str, str]:
    """More environment for a job, names and values as text."""
    return {str(k): str(v) for k, v in (envs or {}).items()}


def absolute(cwd: str | None) -> str | None:
    """A working directory as an absolute path (``~`` expanded); None stays None."""
    return os.path.abspath(os.path.expanduser(cwd)) if cwd else None


def check_envs_again(record: JobRecord, envs: Mapping[str, Any] | None) -> None:
    """``MissingEnvError`` unless ``envs`` names every environment key ``record``'s job ran with (their
    values are never stored: running it again needs them again)."""
    needed = [k for k in (record.env_keys or "").split(",") if k]
    missing = [k for k in needed if k not in (envs or {})]
    if missing:
        raise MissingEnvError(
            f"job {record.self_id!r} ran with environment values that are not stored: {', '.join(missing)}; "
            "give them again or rerun without them"
        )
