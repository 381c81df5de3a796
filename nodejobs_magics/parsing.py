"""Parsing ``%job`` lines: the sub-command parsers (built from ``nodejobs.faces.grammar.COMMANDS``, the
CLI's grammar too) and how ``%job run`` splits a command (``RUN_RULE``, also shown by ``%job help run``)."""

from __future__ import annotations

import argparse
import os
import re
import shlex
from collections.abc import Sequence
from typing import NoReturn

from IPython.core.error import UsageError

from nodejobs.faces import grammar

RUN_RULE = """\
How the command is run: the words after the options are split like a shell splits them, quotes kept.
If the text uses shell syntax outside quotes (| & ; < > ( ) $ ` * ? [, a leading ~ or #, or a leading
NAME=value) it is given to /bin/sh -c exactly as typed, as in a terminal. A single quoted word
containing spaces (%job run "make && make test") also goes to the shell. Anything else runs directly,
without a shell, so each argument reaches the program exactly as split. IPython expands $name and
{expression} first; write $$ or {{ }} for a literal $ or braces."""

_SPECIAL = frozenset("|&;<>()$`*?[")
_ENV_ASSIGNMENT = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_]*=")
_WORD = re.compile(r"""(?:[^\s'"\\]|\\.|'[^']*'|"(?:[^"\\]|\\.)*")+""", re.S)
_SPACE = re.compile(r"\s*")
_VALUE_OPTIONS = {
    c.name: frozenset(flag for o in c.options if o.takes_value for flag in o.flags)
    for c in grammar.COMMANDS if c.name in ("run", "sweep")
}


class SubcommandParser(argparse.ArgumentParser):
    """An argparse parser for one ``%job`` sub-command: errors are a one-line ``UsageError``."""

    def __init__(self, command: grammar.Command) -> None:
        super().__init__(
            prog=f"%job {command.name}",
            description=command.summary + "".join(f" Alias: {a}." for a in command.aliases),
            epilog=RUN_RULE if command.name == "run" else None,
            add_help=False,
            allow_abbrev=False,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        self.command = command
        self.add_argument("-h", "--help", action="store_true", help="show this help")
        grammar.add_options(self, command, grammar.MAGIC)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see `%job help {self.command.name}`)")

    def parse_words(self, words: Sequence[str]) -> argparse.Namespace:
        return self.parse_args(list(words))


PARSERS = {command.name: SubcommandParser(command) for command in grammar.commands(grammar.MAGIC)}
SUBCOMMANDS = tuple(grammar.names(grammar.MAGIC))


def parser_for(name: str) -> SubcommandParser | None:
    """The parser of sub-command ``name`` or of one of its aliases."""
    command = grammar.find_command(name, grammar.MAGIC)
    return PARSERS[command.name] if command is not None else None


def overview() -> str:
    """One line per sub-command, for ``%job help`` and ``%job?``."""
    listing = grammar.overview(grammar.MAGIC)
    return f"Sub-commands:\n{listing}\n\n`%job help SUBCOMMAND` shows its options."


def split_words(text: str, prog: str = "%job") -> list[str]:
    """``text`` split like a shell would; unbalanced quotes are a ``UsageError``."""
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"{prog}: {exc}") from None


def split_run_line(line: str, name: str = "run") -> tuple[list[str], str]:
    """Split ``[OPTIONS] [--] COMMAND...`` into the option words and the command's text as typed
    (``name``: the sub-command, ``run`` or ``sweep``, whose options take values)."""
    options: list[str] = []
    pos = 0
    wants_value = False
    while True:
        space = _SPACE.match(line, pos)  # always matches (it may be empty)
        pos = space.end() if space else pos
        if pos >= len(line):
            return options, ""
        match = _WORD.match(line, pos)
        if match is None or (match.end() < len(line) and not line[match.end()].isspace()):
            split_words(line[pos:], "%job run")  # raises the shell's message
            raise UsageError("%job run: cannot split the command line")
        word = split_words(match.group(), "%job run")
        value = word[0] if word else ""
        if wants_value:
            options.append(value)
            wants_value = False
        elif value == "--":
            return options, line[match.end() :]
        elif not value.startswith("-") or value == "-":
            return options, line[pos:]
        else:
            options.append(value)
            wants_value = value in _VALUE_OPTIONS[name]
        pos = match.end()


def has_shell_syntax(text: str) -> bool:
    """True if ``text`` uses shell syntax outside quotes (see the module docstring)."""
    if _ENV_ASSIGNMENT.match(text):
        return True
    single = double = escaped = False
    word_start = True
    for char in text:
        if escaped:
            escaped = False
        elif single:
            single = char != "'"
        elif char == "\\":
            escaped = True
        elif double:
            if char in "$`":
                return True
            double = char != '"'
        elif char == "'":
            single = True
        elif char == '"':
            double = True
        elif char in _SPECIAL or (word_start and char in "~#"):
            return True
        word_start = char.isspace()
    return False


def command_from_text(text: str) -> str | list[str]:
    """What ``Jobs.run`` gets for ``%job run`` text: a shell string or an argv list (see the rule)."""
    words = split_words(text, "%job run")
    if not words:
        raise UsageError("%job run: no command given (see `%job help run`)")
    if has_shell_syntax(text):
        return text.strip()
    if len(words) == 1 and (has_shell_syntax(words[0]) or any(c.isspace() for c in words[0])):
        return words[0]
    return words


def path(text: str | None) -> str | None:
    """A ``--cwd`` value as an absolute path (``~`` expanded), or None."""
    return os.path.abspath(os.path.expanduser(text)) if text else None
