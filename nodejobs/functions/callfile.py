"""The files of function jobs: a call file (a pickled ``(function, args, kwargs)``) and, beside it,
its result file (the value, or the exception with its traceback text), written by the job's program
(``python -m nodejobs.functions``).

Both are written whole or not at all (a temporary file, then ``os.replace``), readable by their owner
only, and start with a line naming their format and version, then one JSON line (size and SHA-256 of
the pickle, and what can be said without unpickling), then the pickle (cloudpickle).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from nodejobs.errors import ResultFileError, UnpicklableError
from nodejobs.store.files import write_private
from nodejobs.store.paths import CALL_SUFFIX, RESULT_SUFFIX, result_path
from nodejobs.store.paths import call_files as files_of

__all__ = [
    "CALL_MAGIC", "CALL_SUFFIX", "RESULT_MAGIC", "RESULT_SUFFIX", "Outcome", "dumps", "files_of", "loads",
    "pickle_call", "read_file", "read_result", "result_path", "write_file",
]  # fmt: skip

log = logging.getLogger(__name__)

VERSION = 1
CALL_MAGIC, RESULT_MAGIC = b"nodejobs-call", b"nodejobs-result"


# -- writing and reading the files ------------------------------------------------------------------


def dumps(obj: Any) -> bytes:
    """``obj`` pickled by cloudpickle (functions of ``__main__`` and lambdas by value)."""
    import cloudpickle

    return cloudpickle.dumps(obj)


def pickle_call(fn: Any, args: tuple, kwargs: dict) -> bytes:
    """The call as the payload of a call file; ``UnpicklableError`` names what cannot be pickled."""
    try:
        return dumps((fn, args, kwargs))
    except Exception as exc:
        parts = [("the function", fn)] + [(f"argument {i + 1}", a) for i, a in enumerate(args)]
        parts += [(f"argument {k}=", v) for k, v in kwargs.items()]
        culprit = next((what for what, value in parts if not _picklable(value)), "the call")
        name = getattr(fn, "__qualname__", type(fn).__name__)
        raise UnpicklableError(
            f"cannot submit {name}: {culprit} cannot be pickled ({type(exc).__name__}: {exc})"
        ) from None


def _picklable(value: Any) -> bool:
    try:
        dumps(value)
    except Exception:
        return False
    return True


def write_file(path: str, magic: bytes, meta: dict[str, Any], payload: bytes) -> None:
    """Write a call or result file whole or not at all (mode 0600); ``OSError`` if it cannot be."""
    meta = {**meta, "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    head = magic + b" %d\n" % VERSION + json.dumps(meta).encode() + b"\n"
    write_private(path, head, payload, sync=True)  # sync: a result survives a crash of the machine


def read_file(path: str, magic: bytes, what: str) -> tuple[dict[str, Any], bytes]:
    """The JSON line and the checked pickle of a file written by ``write_file``; ``ResultFileError``
    (naming the file) if it is missing, foreign, of another version or damaged."""
    try:
        with open(path, "rb") as f:
            first, second, payload = f.readline(128), f.readline(1 << 20), f.read()
    except FileNotFoundError:
        raise ResultFileError(f"no {what} file {path}") from None
    except OSError as exc:
        raise ResultFileError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None
    word, _, version = first.rstrip(b"\n").partition(b" ")
    if word != magic:
        raise ResultFileError(f"{path} is not a nodejobs {what} file")
    if version != b"%d" % VERSION:
        raise ResultFileError(
            f"{path} was written by another version of nodejobs ({what} format "
            f"{version.decode(errors='replace')!r}; this one reads {VERSION})"
        )
    try:
        meta = json.loads(second)
        intact = meta["size"] == len(payload) and meta["sha256"] == hashlib.sha256(payload).hexdigest()
    except (ValueError, KeyError, TypeError):
        intact = False
    if not intact:
        raise ResultFileError(f"{path} is damaged (truncated or changed since it was written)")
    return meta, payload


def loads(payload: bytes, path: str, what: str) -> Any:
    """Unpickle a checked payload (this runs code: only for files of the user's own database)."""
    import cloudpickle

    try:
        return cloudpickle.loads(payload)
    except Exception as exc:
        raise ResultFileError(f"cannot load the {what} in {path}: {type(exc).__name__}: {exc}") from None


@dataclass(frozen=True)
class Outcome:
    """What a result file says: the value, or what the function raised."""

    ok: bool
    value: Any = None
    exception: BaseException | None = None  # None also when it could not be pickled or loaded back
    error: str = ""  # "ValueError: bad lr"
    traceback: str = ""
    run_id: str | None = None


def read_result(path: str) -> Outcome:
    """The outcome in a result file; ``ResultFileError`` naming the file if it cannot be read."""
    meta, payload = read_file(path, RESULT_MAGIC, "result")
    run_id = meta.get("run_id")
    if meta.get("ok"):
        return Outcome(True, loads(payload, path, "result"), run_id=run_id)
    exception = None
    if payload:
        try:
            exception = loads(payload, path, "exception")
        except ResultFileError as exc:  # e.g. its class is not importable here: the text still tells
            log.info("%s", exc)
    return Outcome(False, None, exception, meta.get("error", ""), meta.get("traceback", ""), run_id)
