"""The ending the analysis commands share: what was written on stdout, or one error line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from analysis.experiment import ExperimentError


def run_command(write: Callable[[], Any], what: str) -> int:
    """Print what ``write()`` returns (a path or paths), or one error line on stderr and exit
    code 2 for an unreadable experiment or an unwritable target."""
    try:
        written = write()
    except ExperimentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write {what}: {exc}", file=sys.stderr)
        return 2
    print("\n".join(map(str, written)) if isinstance(written, (list, tuple)) else written)
    return 0
