"""Analysis of a study: parquet tables, Plotly charts and a self-contained HTML report.

    from analysis import load_experiment, write_results, write_report
    exp = load_experiment("runs/compare")          # a local folder or s3://bucket/prefix
    write_results("runs/compare")                  # trials.parquet, history.parquet
    write_report("runs/compare")                   # report.html (python -m analysis.report)

The charts live in analysis.charts: each ``<chart>_info(exp)`` returns a named tuple and each
``<chart>_figure(info)`` a Plotly figure (``plot_<chart>(exp)`` does both).

Names are loaded on first use, so that ``python -m analysis.results`` and
``python -m analysis.report`` run their module once, and importing the package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analysis.report import write_report
    from analysis.results import Experiment, ExperimentError, Objective, load_experiment, read_results, write_results

__all__ = [
    "Experiment",
    "ExperimentError",
    "Objective",
    "load_experiment",
    "read_results",
    "write_report",
    "write_results",
]

_HOME = {"write_report": "analysis.report", **{n: "analysis.results" for n in __all__ if n != "write_report"}}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
