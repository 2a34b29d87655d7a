"""Studies: `python -m study.launch` builds and runs a Ray Tune + Optuna study.

    from study import PRESETS, main
    main(["--space", "sintro_tc", "--preset", "smoke"])     # exit code, as the CLI

The modules: `launch` (the flow, the entry point), `settings` (flags and presets), `nodes` (which
cluster and what it holds; `python -m study.nodes`), `cluster` (the cluster checks, Ray,
resources, data, storage), `lock` (one launch per study), `record` (study.json), `tuner` (the
Optuna study and the Tuner), `reconcile` (one truth per trial after the run), `searcher`,
`progress`, `presets`, `ray_state`, `validate_cluster`. The names below other than
the presets are imported on first use: `python -m study.launch` must not import `launch` twice,
and `python -m study.validate_cluster` needs no Ray Tune.
"""

import importlib
from typing import Any

from study.presets import PRESETS, Preset, get_preset

__all__ = ["PRESETS", "LaunchError", "Preset", "Settings", "build_tuner", "get_preset", "main"]
_LAZY = {"LaunchError": "study.settings", "Settings": "study.settings", "build_tuner": "study.tuner",
         "main": "study.launch"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'study' has no attribute {name!r}")
