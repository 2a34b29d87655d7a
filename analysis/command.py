"""What the analysis commands share: the argument parser (trainables.cli's: errors in one line),
reading the experiment, a line on stderr per damaged file, and the ending (what was written, or
one error line).

Exit status: 0 when everything was written from whole files; 1 when something was written but a
file of the experiment is damaged (its trial shown as ``unreadable``), 0 for that with
``--allow-damaged``; 2 for a user error (a bad command line, no experiment there, a file that
cannot be written).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from analysis.experiment import Experiment, ExperimentError
from analysis.folder import load_experiment
from trainables import storage
from trainables.cli import OneLineParser, UsageError, fail

DAMAGED = 1  # exit status: written, but some file of the experiment is damaged


def parser(prog: str, description: str) -> OneLineParser:
    """The parser every analysis command starts from: the experiment and --allow-damaged."""
    p = OneLineParser(prog=prog, description=description)
    p.add_argument("experiment", help="experiment folder (<storage>/<name>), local or s3://")
    p.add_argument("--allow-damaged", action="store_true",
                   help="exit 0 even when a file of the experiment is damaged (each is still named on stderr)")
    return p


def run_command(p: OneLineParser, argv: Sequence[str] | None,
                write: Callable[[argparse.Namespace, Experiment], Any], what: str) -> int:
    """Parse `argv`, load the experiment, print what ``write(args, exp)`` returns (a path or
    paths) and name each damaged file on stderr; one error line and exit status 2 for a bad
    command line, an unreadable experiment or an unwritable target."""
    try:
        args = p.parse_args(argv)
        exp = load_experiment(args.experiment)
        written = write(args, exp)
    except (UsageError, ExperimentError) as exc:
        return fail(exc)
    except OSError as exc:
        return fail(f"cannot write {what}: {exc}")
    for d in exp.damaged:  # after the write: a refused command says one line, its reason
        print(f"damaged: {storage.join(args.experiment, d.file)}: {d.problem}", file=sys.stderr)
    print("\n".join(map(str, written)) if isinstance(written, (list, tuple)) else written)
    return DAMAGED if exp.damaged and not args.allow_damaged else 0
