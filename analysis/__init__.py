"""Analysis of a study: parquet tables, Plotly charts and a self-contained HTML report.

    from analysis import load_experiment, write_results, write_report
    exp = load_experiment("runs/compare")          # a local folder or s3://bucket/prefix
    write_results("runs/compare")                  # trials.parquet, history.parquet
    write_report("runs/compare")                   # report.html (python -m analysis.report)

The modules, in the order data flows: ``experiment`` (the Experiment type), ``tables`` (rows
and typed frames), ``journal`` (the Optuna trials), ``folder`` (load_experiment, damaged
files), ``parquet`` (write_results, read_results), ``stats``, ``charts`` (a package, one module
per chart: each ``<chart>_info(exp)`` returns a named tuple and each ``<chart>_figure(info)`` a
Plotly figure), ``report`` with ``report_html`` and ``report_trials`` (the HTML page), ``paper``
(the report's comparison of a ``--space paper`` study) and ``command`` (what the commands share).

Names are loaded on first use, so that ``python -m analysis.report`` and ``python -m
analysis.paper`` run their module once, and importing the package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analysis.experiment import Experiment, ExperimentError, Objective
    from analysis.folder import load_experiment
    from analysis.parquet import read_results, write_results
    from analysis.report import write_report

__all__ = [
    "Experiment",
    "ExperimentError",
    "Objective",
    "load_experiment",
    "read_results",
    "write_report",
    "write_results",
]

_HOME = {
    "Experiment": "analysis.experiment", "ExperimentError": "analysis.experiment", "Objective": "analysis.experiment",
    "load_experiment": "analysis.folder", "read_results": "analysis.parquet", "write_results": "analysis.parquet",
    "write_report": "analysis.report",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
