"""Checks made before a job is recorded or launched: what it is given, and whether it can start."""

from __future__ import annotations

import os
import re
import shutil

from nodejobs.errors import InvalidInputError

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_env_name(name: str) -> str:
    """Return ``name`` if it can name an environment variable of a job, else raise ``ValueError``.

    One rule everywhere (API, CLI, magics): a shell identifier, since the shell supervisor would
    silently drop any other name.
    """
    if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
        raise InvalidInputError(
            f"invalid environment variable name {name!r}: "
            "use letters, digits and _, not starting with a digit"
        )
    return name


def check_arguments(argv: list[str], envs: dict[str, str], cwd: str) -> None:
    """Refuse, before anything is recorded, what no process can be given: NUL, unencodable text, bad names."""
    named = [("command argument", a) for a in argv] + [("working directory", cwd)]
    named += [("environment variable name", k) for k in envs]
    named += [("environment value", v) for v in envs.values()]
    for what, text in named:
        if "\0" in text:
            raise InvalidInputError(f"{what} contains a NUL character: {text!r}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInputError(f"{what} is not valid text (lone surrogate): {text!r}") from None
    for key in envs:
        check_env_name(key)


def startup_problem(argv: list[str], shell: bool, cwd: str, env: dict[str, str]) -> str | None:
    """Why ``argv`` cannot start in ``cwd``, or None if it looks startable."""
    if not os.path.exists(cwd):
        return f"working directory does not exist: {cwd}"
    if not os.path.isdir(cwd):
        return f"working directory is not a directory: {cwd}"
    if not os.access(cwd, os.X_OK):
        return f"working directory is not accessible: {cwd}"
    if shell:
        return None
    program = argv[0]
    if os.sep in program:
        path = program if os.path.isabs(program) else os.path.join(cwd, program)
        if not os.path.exists(path):
            return f"no such file: {program}"
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            return f"permission denied: {program} is not executable"
        return None
    if shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        return f"command not found: {program}"
    return None
