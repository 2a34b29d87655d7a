"""What every command-line tool of the project does with bad input: one line on stderr, exit 2.

    parser = OneLineParser(prog="python -m trainables.trainer", description="...")
    try:
        args = parser.parse_args(argv)          # UsageError instead of argparse's usage block
        ...
    except UsageError as e:
        return fail(e)                          # "error: <message>" on stderr, returns 2

The message names the problem and the fix; no traceback, no usage block, and the tool writes
nothing before its input is checked. Used by the trainer, the evaluator, the launcher's tools
and the analysis commands.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input to a command-line tool: printed as one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a parse error raises UsageError (one line naming --help) instead of
    printing the usage block and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def one_line(exc: BaseException | str, limit: int = 300) -> str:
    """An exception (or text) as one line: whitespace collapsed, at most `limit` characters."""
    text = exc if isinstance(exc, str) else (str(exc) or type(exc).__name__)
    return " ".join(text.split())[:limit]


def fail(message: BaseException | str) -> int:
    """Print `error: <message>` as one line on stderr; returns the exit code 2."""
    print(f"error: {one_line(message)}", file=sys.stderr)
    return EXIT_USAGE


def check_output_folder(path: str | os.PathLike, flag: str) -> None:
    """`path` is, or can become, a folder this user writes; a ValueError naming the fix otherwise
    (checked before any work, so a bad output path fails in a second, not after the work)."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{flag} {path}: {existing} is a file, not a folder; choose a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: {existing} cannot be written; choose a writable folder")
