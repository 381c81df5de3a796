"""Job files: reading output (whole, the last lines, or from a byte offset on) and the atomic private
write of the files nodejobs keeps for itself."""

from __future__ import annotations

import contextlib
import os

from nodejobs.errors import InvalidInputError

_BLOCK = 64 * 1024


STREAMS = ("out", "err")


def stream_index(stream: str) -> int:
    """0 for ``"out"`` (stdout), 1 for ``"err"`` (stderr); anything else is a ``ValueError``."""
    if stream not in STREAMS:
        raise InvalidInputError(f"stream must be 'out' or 'err', not {stream!r}")
    return STREAMS.index(stream)


def decode(data: bytes) -> str:
    """Job output as text; bytes that are not UTF-8 become replacement characters."""
    return data.decode("utf-8", errors="replace")


def remove_if_exists(path: str) -> None:
    """Delete a file; a missing file is fine."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def write_private(path: str, *parts: bytes | str, sync: bool = False) -> None:
    """Write ``parts`` to ``path`` whole or not at all, readable by its owner only: a temporary file
    (mode 0600) beside it, flushed to the disk with ``sync``, then renamed over ``path``. ``OSError`` if
    it cannot be; the temporary file is removed then."""
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            for part in parts:
                f.write(part.encode() if isinstance(part, str) else part)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        remove_if_exists(temporary)
        raise


def read_text(path: str) -> str:
    """The whole file as text, or ``""`` if it does not exist."""
    try:
        with open(path, "rb") as f:
            return decode(f.read())
    except FileNotFoundError:
        return ""


def tail_lines(path: str, n: int = 10, max_bytes: int = 16 * 1024 * 1024) -> str:
    """The last ``n`` lines of a file, reading backwards from its end (at most ``max_bytes``).

    A missing file gives ``""``. A single line longer than ``max_bytes`` is cut to its last
    ``max_bytes`` bytes rather than read whole.
    """
    if n <= 0:
        return ""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return ""
    with f:
        end = f.seek(0, os.SEEK_END)
        pos = end
        chunks: list[bytes] = []
        newlines = 0
        # One more newline than lines wanted, unless the file ends without one.
        while pos > 0 and end - pos < max_bytes:
            step = min(_BLOCK, pos, max_bytes - (end - pos))
            pos -= step
            f.seek(pos)
            chunk = f.read(step)
            chunks.append(chunk)
            newlines += chunk.count(b"\n")
            if newlines > n:
                break
    data = b"".join(reversed(chunks))
    del chunks  # a huge line is held once, not three times (chunks, lines, joined lines)
    start, search_end = 0, len(data) - 1 if data.endswith(b"\n") else len(data)
    for _ in range(n):  # lines end with "\n" only: a "\r" (progress bars) stays inside its line
        found = data.rfind(b"\n", 0, search_end)
        if found < 0:
            start = 0
            break
        start, search_end = found + 1, found
    return decode(data[start:] if start else data)


def read_from(path: str, offset: int, limit: int = 1024 * 1024, final: bool = False) -> tuple[str, int]:
    """New text from ``offset`` (at most ``limit`` bytes) and the offset to read from next.

    Stops before an incomplete UTF-8 sequence at the end so a character is never split, unless
    ``final`` (the writer has ended: what is left is decoded with replacement characters). If the file
    shrank (replaced by a rerun), reading starts again from 0.
    """
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return "", offset
    with f:
        size = os.fstat(f.fileno()).st_size
        if size < offset:
            offset = 0
        f.seek(offset)
        data = f.read(min(limit, size - offset))
    if final and len(data) < limit:  # read to the end: nothing more will complete it
        keep = len(data)
    elif len(data) == limit or data[-1:] >= b"\x80":
        keep = _complete_utf8_prefix(data)
    else:
        keep = len(data)
    return decode(data[:keep]), offset + keep


def _complete_utf8_prefix(data: bytes) -> int:
    """Length of ``data`` without a trailing, unfinished UTF-8 sequence."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return len(data)
        if byte >= 0xC0:
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return len(data) if back >= need else len(data) - back
    return len(data)
