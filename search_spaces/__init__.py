"""Optuna define-by-run search spaces, one function per name.

    from search_spaces import SPACES, get_space
    space = get_space("sintro_tc")            # Callable[[optuna.Trial], dict | None]
    points = fixed_points("paper")            # configurations to evaluate first
    is_fixed_design("paper")                  # True: the study is exactly those points x seeds

A space suggests ``TrainConfig`` fields and returns its constants. Add a space by adding one
public function to ``search_spaces/spaces.py``; docs/search_spaces.md explains the ranges.
"""

from __future__ import annotations

from typing import Any

import optuna

from search_spaces.spaces import SPACES, Space, dataset_of, enqueue

__all__ = ["SPACES", "Space", "dataset_of", "enqueue", "fixed_constant", "fixed_points", "get_space",
           "is_fixed_design"]


def get_space(name: str) -> Space:
    """The space called `name`; a ValueError lists the valid names otherwise."""
    try:
        return SPACES[name]
    except KeyError:
        raise ValueError(f"unknown search space {name!r}: use one of {', '.join(sorted(SPACES))}") from None


def fixed_points(name: str) -> list[dict[str, Any]]:
    """The parameter dicts the space `name` asks to evaluate before sampling (often none)."""
    return [dict(p) for p in getattr(get_space(name), "points_to_evaluate", [])]


def is_fixed_design(name: str) -> bool:
    """Whether the space `name` trains only its fixed points (``@enqueue(..., only=True)``)."""
    return bool(getattr(get_space(name), "fixed_design", False))


def fixed_constant(name: str, key: str, dataset: str = "dsprites_small") -> Any | None:
    """The value the space `name` returns for `key` as a constant (e.g. ``paper``'s precision),
    None when it leaves `key` to the launcher. Read from one trial of an in-memory study."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" line for a probe
    try:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        study.set_user_attr("dataset", dataset)
        points = fixed_points(name)
        if points:
            study.enqueue_trial(points[0])
        return (get_space(name)(study.ask()) or {}).get(key)
    finally:
        optuna.logging.set_verbosity(verbosity)
