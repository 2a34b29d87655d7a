"""Studies: `python -m study.launch` builds and runs a Ray Tune + Optuna study.

    from study import PRESETS, main
    main(["--space", "sintro_tc", "--preset", "smoke"])     # exit code, as the CLI

`launch` is imported on first use, so `python -m study.launch` does not import it twice.
"""

from study.presets import PRESETS, Preset, get_preset

__all__ = ["PRESETS", "LaunchError", "Preset", "Settings", "build_tuner", "get_preset", "main"]


def __getattr__(name: str):
    if name in ("LaunchError", "Settings", "build_tuner", "main"):
        from study import launch

        return getattr(launch, name)
    raise AttributeError(f"module 'study' has no attribute {name!r}")
