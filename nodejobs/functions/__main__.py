"""``python -m nodejobs.functions <call file>``: the program of a function job.

It loads the pickled call, calls the function with its output going to the job's logs (unbuffered),
and writes the outcome beside the call file (``callfile``). Exit status: 0 the function returned,
1 it raised, 2 the call file cannot be used, 3 the result cannot be written (e.g. the disk is full:
the reason goes to stderr).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Any

from nodejobs.backends.base import RUN_MARK  # given by the backend to the program of each run
from nodejobs.errors import ResultFileError
from nodejobs.functions.callfile import (
    CALL_MAGIC,
    RESULT_MAGIC,
    dumps,
    loads,
    read_file,
    result_path,
    write_file,
)

log = logging.getLogger("nodejobs.functions")

RAISED, BAD_CALL, CANNOT_WRITE = 1, 2, 3


def run(call_path: str) -> int:
    """Run the call in ``call_path``, write its outcome beside it; the exit status."""
    out = result_path(call_path)
    if os.path.exists(out):
        os.remove(out)  # an earlier run's: never mistaken for this one's
    try:
        meta, payload = read_file(call_path, CALL_MAGIC, "call")
        for entry in meta.get("sys_path", []):  # where the submitting process found its modules
            if entry not in sys.path:
                sys.path.append(entry)
        fn, args, kwargs = loads(payload, call_path, "call")
    except ResultFileError as exc:
        log.error("%s", exc)
        return BAD_CALL
    run_id = os.environ.get(RUN_MARK)
    try:
        value = fn(*args, **kwargs)
    except (Exception, SystemExit) as exc:
        return _write_raised(out, exc, run_id)
    try:
        payload = dumps(value)
    except Exception as exc:
        problem = ValueError(f"the return value of {meta.get('name')} cannot be pickled: {exc!r}")
        return _write_raised(out, problem, run_id, with_exception=False)
    return _write(out, {"ok": True, "run_id": run_id}, payload) or 0


def _write_raised(out: str, exc: BaseException, run_id: str | None, with_exception: bool = True) -> int:
    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None  # from the function on
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    sys.stderr.write(text)
    payload = b""
    if with_exception:
        try:
            payload = dumps(exc)
        except Exception as problem:  # e.g. it holds a lock: its type, message and traceback remain
            log.warning("the exception cannot be pickled (%r); keeping its text only", problem)
    error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return _write(out, {"ok": False, "run_id": run_id, "error": error, "traceback": text}, payload) or RAISED


def _write(out: str, meta: dict[str, Any], payload: bytes) -> int:
    """Write the result file; 0, or ``CANNOT_WRITE`` with the reason on stderr."""
    try:
        write_file(out, RESULT_MAGIC, meta, payload)
    except OSError as exc:
        log.error("cannot write the result (%d bytes) to %s: %s", len(payload), out, exc.strerror or exc)
        return CANNOT_WRITE
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m nodejobs.functions CALL_FILE``."""
    logging.basicConfig(format="nodejobs.functions: %(message)s", level=logging.WARNING)
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(write_through=True)  # print output reaches the job's log at once
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        log.error("usage: python -m nodejobs.functions CALL_FILE")
        return BAD_CALL
    return run(args[0])


if __name__ == "__main__":
    sys.exit(main())
