"""Tab completion of ``%job`` lines: sub-commands, options, statuses and job ids."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from IPython.core.completer import SimpleCompletion, context_matcher

from nodejobs.faces import grammar
from nodejobs_magics.parsing import SUBCOMMANDS, parser_for

MATCHER_ID = "nodejobs_magics.job"
_JOB_LINE = re.compile(r"^\s*(?:[A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*\s*=\s*)?%job\s(?P<rest>.*)$", re.S)


def complete(text_until_cursor: str, ids: Callable[[str, bool | None], list[str]]) -> list[str] | None:
    """Completions of the word being typed on a ``%job`` line (also ``x = %job ...``), or None.

    Sub-commands, a sub-command's options, statuses after ``--status``, and job ids from
    ``ids(prefix, active)``: only active ones for ``stop``, only ended ones for ``rm`` and ``rerun``.
    None: not ours to complete.
    """
    match = _JOB_LINE.match(text_until_cursor)
    if match is None:
        return None
    words = match.group("rest").split()
    if not match.group("rest")[-1:].strip():
        words.append("")
    current = words[-1]
    if len(words) == 1:
        return [n for n in SUBCOMMANDS if n.startswith(current)]
    parser = parser_for(words[0])
    if parser is None:
        return []
    command, previous = parser.command, words[-2]
    if command.name == "help":
        return [n for n in SUBCOMMANDS if n.startswith(current)] if len(words) == 2 else []
    if previous == "--status":
        return [s for s in grammar.STATUS_CHOICES if s.startswith(current)]
    if current.startswith("-"):
        flags = ["-h", "--help", *(f for o in command.options_for(grammar.MAGIC) for f in o.flags)]
        return sorted(f for f in flags if f.startswith("-") and f.startswith(current))
    options = {f: o for o in command.options_for(grammar.MAGIC) for f in o.flags}
    if command.name == "run" or (previous in options and options[previous].takes_value):
        return None  # a command, a path or a value: IPython's own completions
    if command.takes_ids:
        return ids(current, command.ids)
    return []


def matcher(complete_line: Callable[[str], list[str] | None]) -> Any:
    """An IPython completion matcher for ``%job`` lines (``complete_line``: the completions of the text
    up to the cursor, or None) that hides Python's completions there."""

    @context_matcher(identifier=MATCHER_ID)
    def job_matcher(context: Any) -> dict:
        found = complete_line(context.text_until_cursor)
        word = re.split(r"\s", context.text_until_cursor)[-1]
        return {
            "completions": [SimpleCompletion(text=c, type="nodejobs") for c in found or ()],
            "suppress": found is not None,
            "matched_fragment": word,
            "ordered": True,
        }

    return job_matcher
