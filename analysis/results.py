"""``python -m analysis.results EXPERIMENT``: only the two parquet tables of an experiment
(trials.parquet, history.parquet; docs/analysis.md, "The tables")."""

from __future__ import annotations

import argparse
import sys

from analysis.command import run_command
from analysis.parquet import write_results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.results",
                                     description="Write trials.parquet and history.parquet for an experiment.")
    parser.add_argument("experiment", help="experiment folder (<storage>/<name>), local or s3://")
    parser.add_argument("--out", default=None, help="folder to write to (default: the experiment folder)")
    args = parser.parse_args(argv)
    return run_command(lambda: write_results(args.experiment, args.out), "the tables")


if __name__ == "__main__":
    sys.exit(main())
