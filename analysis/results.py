"""``python -m analysis.results EXPERIMENT``: only the two parquet tables of an experiment
(trials.parquet, history.parquet; docs/analysis.md, "The tables")."""

from __future__ import annotations

import sys

from analysis.command import parser, run_command
from analysis.parquet import write_results


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m analysis.results", "Write trials.parquet and history.parquet for an experiment.")
    p.add_argument("--out", default=None, help="folder to write to (default: the experiment folder)")
    return run_command(p, argv, lambda args, exp: write_results(args.experiment, args.out, experiment=exp),
                       "the tables")


if __name__ == "__main__":
    sys.exit(main())
