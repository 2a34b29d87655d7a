"""What every analysis works on: an :class:`Experiment`, the two tables of one study with what
is needed to read them (objectives, searched parameters, where the images are).

``analysis.folder.load_experiment`` builds one from an experiment folder, and
``analysis.parquet.read_results`` from the two parquet files; the charts, the report and the
paper comparison take it as it is.
"""

from __future__ import annotations

import base64
import json
import posixpath
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pandas as pd
from optuna.distributions import BaseDistribution

from analysis.tables import HISTORY_COLUMNS, config_column
from trainables import storage
from trainables.vocabulary import METRICS, TRAVERSALS_INFO


def png_uri(data: bytes) -> str:
    """PNG bytes as a ``data:`` URI, for a page that works offline."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


class ExperimentError(ValueError):
    """The path is not a readable experiment folder; the message is one line."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (pyarrow's and Optuna's run to many)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class Objective(NamedTuple):
    metric: str
    direction: str  # "maximize" or "minimize"


class Traversals(NamedTuple):
    """A trial's traversals.json: the latent each row of traversals.png moves (largest KL
    first), that latent's KL, and the z values of the columns."""

    latents: tuple[int, ...]
    kl: tuple[float, ...]
    values: tuple[float, ...]

    def row_labels(self) -> list[str]:
        return [f"z{latent} · KL {kl:.3g}" for latent, kl in zip(self.latents, self.kl, strict=True)]

    def column_labels(self) -> list[str]:
        return [f"{v:.3g}" for v in self.values]


class Damage(NamedTuple):
    """A file of the experiment that exists but cannot be read whole."""

    file: str     # relative to the experiment folder
    problem: str  # one line: what is wrong and what it means for the analysis


@dataclass
class Experiment:
    """A loaded experiment: the two tables plus what the charts need to read them."""

    path: str                                  # as given: a local folder or an s3:// URI
    name: str
    study: dict[str, Any]                      # study.json ({} when absent)
    trials: pd.DataFrame                       # one row per trial (docs/analysis.md, "The tables")
    history: pd.DataFrame                      # one row per trial-epoch
    objectives: tuple[Objective, ...]          # what the study optimised, in order
    searched: dict[str, BaseDistribution]      # searched parameter -> its Optuna distribution
    conditional: tuple[str, ...] = ()          # searched parameters some trials do not have
    notes: list[str] = field(default_factory=list)  # what could not be read, one line each
    damaged: list[Damage] = field(default_factory=list)  # damaged files; their trials are `unreadable`
    launch_runs: bool = False                  # a launch ran the study when it was read: unfinished trials run
    # (pyarrow filesystem, root) of `path`, opened on the first image read: an object store's
    # filesystem is slow to open (it may look up the bucket's region), so it is opened once.
    _fs: Any = field(default=None, repr=False, compare=False)

    @property
    def metrics(self) -> list[str]:
        """Numeric result columns of the tables (losses and scores), display order."""
        return [c for c in self.history.columns if c not in HISTORY_COLUMNS and not c.startswith("config/")]

    def config_columns(self) -> list[str]:
        """The ``config/<key>`` columns of the trials table."""
        return [c for c in self.trials.columns if c.startswith("config/")]

    def param_column(self, key: str) -> str | None:
        """The trials-table column of a configuration key (``variant`` has its own), None when
        no trial has it."""
        col = config_column(key)
        return col if col in self.trials else None

    def searched_columns(self) -> dict[str, str]:
        """searched parameter -> its column in the trials table (parameters no trial has left out)."""
        return {p: c for p in self.searched if (c := self.param_column(p)) is not None}

    def direction(self, metric: str) -> str:
        """"maximize" or "minimize": the study's objective, else the metric's own direction;
        a metric with no better side counts as a loss."""
        for o in self.objectives:
            if o.metric == metric:
                return o.direction
        known = METRICS.get(metric)
        return "maximize" if known is not None and known.higher_is_better else "minimize"

    def file_bytes(self, rel: str) -> bytes | None:
        """A file of the experiment folder by its path relative to the folder, None when absent."""
        try:
            if self._fs is None:
                self._fs = storage.filesystem(self.path)
            fs, root = self._fs
            with fs.open_input_stream(storage.join(root, rel)) as f:
                return f.read()
        except (OSError, ValueError):  # missing, unreadable, or a URI pyarrow cannot open
            return None

    def image_bytes(self, trial_id: str, kind: str) -> bytes | None:
        """The PNG bytes of one final image of a trial, or None when it has none."""
        rel = self._image_path(trial_id, kind)
        return None if rel is None else self.file_bytes(rel)

    def image_kinds(self) -> list[str]:
        """The kinds of final image some trial has (``recon``, ``traversals``, ...)."""
        return [c.removeprefix("image/") for c in self.trials.columns if c.startswith("image/")]

    def traversals_bytes(self, trial_id: str) -> bytes | None:
        """The trial's traversals.json (which latent each traversal row moves, its KL, the z
        values), from the folder of its traversal image."""
        rel = self._image_path(trial_id, "traversals")
        return None if rel is None else self.file_bytes(posixpath.join(posixpath.dirname(rel), TRAVERSALS_INFO))

    def traversals(self, trial_id: str) -> Traversals | None:
        """The trial's traversals.json when it is whole (one latent and one KL per row), else None."""
        data = self.traversals_bytes(trial_id)
        try:
            info = json.loads(data) if data is not None else None
            if not isinstance(info, dict):
                return None
            out = Traversals(*(tuple(t(v) for v in info[k]) for k, t in (("latents", int), ("kl", float),
                                                                           ("values", float))))
        except (ValueError, TypeError, KeyError):
            return None
        return out if len(out.latents) == len(out.kl) else None

    def _image_path(self, trial_id: str, kind: str) -> str | None:
        rows = self.trials.loc[self.trials["trial_id"] == trial_id]
        col = f"image/{kind}"
        if rows.empty or col not in rows or not isinstance(rows[col].iloc[0], str):
            return None
        return rows[col].iloc[0]

