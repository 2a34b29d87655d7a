"""What the analysis commands share: the argument parser (errors in one line), reading the
experiment, a line on stderr per damaged file, and the ending (what was written, or one error
line).

Exit status: 0 when everything was written from whole files; 1 when something was written but a
file of the experiment is damaged (its trial shown as ``unreadable``), 0 for that with
``--allow-damaged``; 2 for a user error (no experiment there, a file that cannot be written).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from analysis.experiment import Experiment, ExperimentError
from analysis.folder import load_experiment
from trainables import storage

DAMAGED = 1  # exit status: written, but some file of the experiment is damaged
USER_ERROR = 2


class _OneLineParser(argparse.ArgumentParser):
    """argparse ends a bad command line with its usage and the error: here only the error."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(USER_ERROR)


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The parser every analysis command starts from: the experiment and --allow-damaged."""
    p = _OneLineParser(prog=prog, description=description)
    p.add_argument("experiment", help="experiment folder (<storage>/<name>), local or s3://")
    p.add_argument("--allow-damaged", action="store_true",
                   help="exit 0 even when a file of the experiment is damaged (each is still named on stderr)")
    return p


def run_command(experiment: str, write: Callable[[Experiment], Any], what: str, *, allow_damaged: bool) -> int:
    """Load the experiment, name each damaged file on stderr, print what ``write(exp)`` returns
    (a path or paths); one error line and exit status 2 for an unreadable experiment or an
    unwritable target."""
    try:
        exp = load_experiment(experiment)
        for d in exp.damaged:
            print(f"damaged: {storage.join(experiment, d.file)}: {d.problem}", file=sys.stderr)
        written = write(exp)
    except ExperimentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR
    except OSError as exc:
        print(f"error: cannot write {what}: {exc}", file=sys.stderr)
        return USER_ERROR
    print("\n".join(map(str, written)) if isinstance(written, (list, tuple)) else written)
    return DAMAGED if exp.damaged and not allow_damaged else 0
