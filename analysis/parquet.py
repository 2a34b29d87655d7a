"""trials.parquet and history.parquet: the two tables of an Experiment on disk (or S3).

Both files carry the experiment's name, study.json, objectives, searched parameters (with their
Optuna distributions) and notes in the parquet schema metadata (key ``vae_study``), so
:func:`read_results` gives back the same :class:`Experiment` without the raw folder. Writing
is atomic and deterministic: twice on an unchanged folder gives byte-identical files.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from optuna.distributions import distribution_to_json, json_to_distribution

from analysis.experiment import Experiment, ExperimentError, Objective, one_line
from analysis.folder import load_experiment
from trainables import storage
from trainables.vocabulary import HISTORY_FILE, TRIALS_FILE

_META_KEY = b"vae_study"


def write_results(path: str | os.PathLike, out: str | os.PathLike | None = None,
                  *, experiment: Experiment | None = None) -> tuple[str, str]:
    """Write ``trials.parquet`` and ``history.parquet`` for the experiment at ``path``.

    ``out`` is the folder to write to (default: the experiment folder itself, local or S3);
    ``experiment``: the folder already loaded. Returns the two paths written.
    """
    exp = experiment if experiment is not None else load_experiment(path)
    folder = os.fspath(out if out is not None else path)
    meta = _metadata(exp)
    return (storage.write_bytes(storage.join(folder, TRIALS_FILE), _parquet_bytes(exp.trials, meta)),
            storage.write_bytes(storage.join(folder, HISTORY_FILE), _parquet_bytes(exp.history, meta)))


def read_results(path: str | os.PathLike, *, experiment_path: str | None = None) -> Experiment:
    """The Experiment stored by write_results in the folder ``path`` (images are read from
    ``experiment_path``, by default the experiment folder recorded in the files)."""
    text = os.fspath(path)
    try:
        trials_t, history_t = (_read_table(storage.join(text, name)) for name in (TRIALS_FILE, HISTORY_FILE))
    except (OSError, pa.ArrowInvalid) as exc:
        raise ExperimentError(f"no readable {TRIALS_FILE}/{HISTORY_FILE} in {text!r}: {one_line(exc)}") from None
    meta = json.loads((trials_t.schema.metadata or {}).get(_META_KEY, b"{}"))
    return Experiment(
        path=experiment_path or meta.get("path") or text,
        name=meta.get("name") or Path(storage.filesystem(text)[1]).name,
        study=meta.get("study", {}),
        trials=trials_t.to_pandas(),
        history=history_t.to_pandas(),
        objectives=tuple(Objective(*o) for o in meta.get("objectives", [])),
        searched={k: json_to_distribution(v) for k, v in meta.get("searched", [])},
        conditional=tuple(meta.get("conditional", [])),
        notes=list(meta.get("notes", [])),
        launch_runs=bool(meta.get("launch_runs", False)),
    )


def _read_table(location: str) -> pa.Table:
    data = storage.read_bytes(location)
    if data is None:
        raise FileNotFoundError(f"{location} does not exist")
    return pq.read_table(io.BytesIO(data))


def _metadata(exp: Experiment) -> bytes:
    return json.dumps({
        "name": exp.name,
        "path": exp.path,
        "study": exp.study,
        "objectives": [list(o) for o in exp.objectives],
        "searched": [[k, distribution_to_json(d)] for k, d in exp.searched.items()],
        "conditional": list(exp.conditional),
        "notes": exp.notes,
        "launch_runs": exp.launch_runs,
    }, sort_keys=True, default=str).encode()


def _parquet_bytes(frame: pd.DataFrame, meta: bytes) -> bytes:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _META_KEY: meta})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()
