"""Load an experiment folder (finished or still running, local or ``s3://``) into two tables.

The folder is the one ``python -m study.launch`` writes (docs/architecture.md, "Experiment
folder"): ``study.json``, ``optuna.journal``, Ray Tune's ``experiment_state-*.json`` and one
directory per trial holding Ray's ``params.json`` and ``result.json`` (one JSON object per
``tune.report``), checkpoints and the final ``images/``.

Two tables come out, and :func:`write_results` stores them next to the experiment:

``trials.parquet`` -- one row per trial
    ``trial_id``, ``trial_dir``, ``trial_number`` (0-based launch order), ``optuna_number`` and
    ``optuna_state`` (the matching trial in ``optuna.journal``), ``variant``, ``seed``,
    ``outcome`` (``completed``, ``diverged``, ``error``, ``stopped`` -- ended by a scheduler
    --, ``running``, ``pending``), ``ray_status``, ``diverged``, ``diverged_epoch``, ``error``,
    ``epochs`` (last epoch reported), ``n_reports``, ``wall_time_s``, ``started_at``,
    ``ended_at``, ``node_ip``, ``hostname``, ``gpu_share``, ``retries`` (failures Ray retried
    from a checkpoint), ``restarts`` (times the trial process started again: retries and
    resumes), ``config/<key>`` for every key of ``params.json``, the final value of every
    numeric result key (``rec_loss``, ``mig``, ...: the last finite value reported),
    ``image/<kind>`` (path of the final image relative to the experiment) and
    ``version/<package>`` from ``study.json``.
``history.parquet`` -- one row per trial and epoch
    ``trial_id``, ``variant``, ``seed``, ``epoch``, ``training_iteration``, ``time_total_s``,
    ``timestamp``, ``outcome``, ``node_ip``, ``gpu_share`` and every numeric result key. When a
    trial was restarted from a checkpoint and reported an epoch twice, the later report wins.

Both files carry the experiment's objectives and searched parameters (with their Optuna
distributions) in the parquet schema metadata, so :func:`read_results` gives back the same
:class:`Experiment` without the raw folder.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import optuna
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
    json_to_distribution,
)

__all__ = [
    "DISENTANGLEMENT_METRICS",
    "UNSUPERVISED_METRICS",
    "is_detail",
    "Experiment",
    "ExperimentError",
    "IMAGE_KINDS",
    "Objective",
    "load_experiment",
    "read_results",
    "write_results",
]

TRIALS_FILE = "trials.parquet"
HISTORY_FILE = "history.parquet"
_META_KEY = b"vae_study"

# Scores where higher is better (docs/architecture.md "Trial results"), in display order.
DISENTANGLEMENT_METRICS = (
    "beta_vae", "factor_vae", "mig", "modularity", "explicitness", "dci_disentanglement",
    "dci_completeness", "dci_informativeness", "sap",
)
# The score a study optimises when study.json does not say (study.launch's default first).
_SCORE_PREFERENCE = ("mig", "dci_disentanglement", "factor_vae", "beta_vae", "sap", "explicitness", "modularity")
# Loss terms the trainer reports, in display order; anything else numeric follows sorted.
_LOSS_ORDER = (
    "loss", "loss_encoder", "loss_decoder", "rec_loss", "kl", "mi", "tc", "dwkl", "exp_elbo_rec",
    "exp_elbo_fake", "kl_fake", "kl_fake_minus_real",
)
# trainables.metrics' measures that need no ground-truth factors (Ukiyo-e has only these).
UNSUPERVISED_METRICS = ("mse", "psnr", "active_units", "kl_total", "gaussian_tc")
# Throughput, not quality: kept in the tables, left out of the charts' default metric lists.
THROUGHPUT_KEYS = ("epoch_time_s", "images_per_s")
_DETAIL = re.compile(r"^kl_dim_\d+$")  # per-latent KL: in the tables, not in default charts


def _evaluated(key: str) -> bool:
    """A key of trainables.metrics.evaluate (measured every few epochs), not a training loss."""
    return key in DISENTANGLEMENT_METRICS or key in UNSUPERVISED_METRICS or bool(_DETAIL.match(key))


def is_detail(key: str) -> bool:
    """A per-dimension or throughput key: tabled, but not charted unless asked for."""
    return key in THROUGHPUT_KEYS or bool(_DETAIL.match(key))
# The final image grids Trainer.save_images writes, in display order, with captions.
IMAGE_KINDS = {
    "recon": "reconstructions (top: input, bottom: reconstruction)",
    "traversals": "latent traversals",
    "samples_std1": "random samples, prior std 1",
    "samples_std3": "random samples, prior std 3",
}
# Result keys Ray adds to every report, and our own bookkeeping keys: not metrics.
_RAY_KEYS = frozenset({
    "timestamp", "checkpoint_dir_name", "done", "training_iteration", "trial_id", "date",
    "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "config",
    "time_since_restore", "iterations_since_restore", "experiment_tag", "should_checkpoint",
    "warmup_time", "experiment_id", "episodes_total", "timesteps_total", "timesteps_since_restore",
})
_NOT_METRICS = _RAY_KEYS | {"epoch", "outcome", "gpu_share", "diverged_epoch", "error", "seed", "metrics_epoch"}
_FINAL_OUTCOMES = ("completed", "diverged", "error")
_FAILED = ("diverged", "error")
# Config keys study.launch adds that are not parameters of the model (never "searched").
_BOOKKEEPING = frozenset({"seed", "config_group", "optuna_number", "objectives", "metrics_every",
                          "final_metrics", "train_images", "data_root", "device"})


class ExperimentError(ValueError):
    """The path is not a readable experiment folder; the message is one line."""


class Objective(NamedTuple):
    metric: str
    direction: str  # "maximize" or "minimize"


@dataclass
class Experiment:
    """A loaded experiment: the two tables plus what the charts need to read them."""

    path: str                                  # as given: a local folder or an s3:// URI
    name: str
    study: dict[str, Any]                      # study.json ({} when absent)
    trials: pd.DataFrame                       # one row per trial (see module docstring)
    history: pd.DataFrame                      # one row per trial-epoch
    objectives: tuple[Objective, ...]          # what the study optimised, in order
    searched: dict[str, BaseDistribution]      # searched parameter -> its Optuna distribution
    conditional: tuple[str, ...] = ()          # searched parameters some trials do not have
    notes: list[str] = field(default_factory=list)  # what could not be read, one line each
    _store: Any = field(default=None, repr=False, compare=False)

    @property
    def metrics(self) -> list[str]:
        """Numeric result columns of the trials table (losses and scores), display order."""
        return [c for c in self.history.columns if c not in _HISTORY_FIXED]

    def config_columns(self) -> list[str]:
        return [c for c in self.trials.columns if c.startswith("config/")]

    def image_bytes(self, trial_id: str, kind: str) -> bytes | None:
        """The PNG bytes of one final image of a trial, or None when it has none."""
        rows = self.trials.loc[self.trials["trial_id"] == trial_id]
        col = f"image/{kind}"
        if rows.empty or col not in rows or not isinstance(rows[col].iloc[0], str):
            return None
        try:
            if self._store is None:
                self._store = _Store.open(self.path)
            return self._store.read(rows[col].iloc[0])
        except (OSError, ExperimentError):
            return None

    def image_uri(self, trial_id: str, kind: str) -> str | None:
        data = self.image_bytes(trial_id, kind)
        if data is None:
            return None
        return "data:image/png;base64," + base64.b64encode(data).decode("ascii")

    def image_kinds(self) -> list[str]:
        return [c.removeprefix("image/") for c in self.trials.columns if c.startswith("image/")]


_HISTORY_FIXED = (
    "trial_id", "variant", "seed", "epoch", "training_iteration", "time_total_s", "timestamp",
    "outcome", "node_ip", "gpu_share",
)


# ---------------------------------------------------------------------------------------------
# Storage: one small wrapper over pyarrow.fs so local folders and s3:// read the same way.


class _Store:
    def __init__(self, fs: pafs.FileSystem, root: str, uri: str) -> None:
        self.fs, self.root, self.uri = fs, root.rstrip("/"), uri
        self.local = isinstance(fs, pafs.LocalFileSystem)

    @classmethod
    def open(cls, path: str | os.PathLike) -> _Store:
        text = os.fspath(path)
        if "://" in text:
            try:
                fs, root = pafs.FileSystem.from_uri(text)
            except (pa.ArrowInvalid, OSError, ValueError) as exc:
                raise ExperimentError(f"cannot open {text!r}: {_one_line(exc)}") from None
            return cls(fs, root, text)
        return cls(pafs.LocalFileSystem(), str(Path(text).resolve()), text)

    def _full(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def info(self, rel: str = "") -> pafs.FileInfo:
        return self.fs.get_file_info(self._full(rel))

    def is_dir(self, rel: str = "") -> bool:
        return self.info(rel).type == pafs.FileType.Directory

    def is_file(self, rel: str) -> bool:
        return self.info(rel).type == pafs.FileType.File

    def list(self, rel: str = "") -> list[pafs.FileInfo]:
        sel = pafs.FileSelector(self._full(rel), allow_not_found=True, recursive=False)
        return sorted(self.fs.get_file_info(sel), key=lambda i: i.base_name)

    def read(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self._full(rel)) as f:
            return f.read()

    def write_atomic(self, rel: str, data: bytes) -> str:
        """Write the whole file or nothing: a temp file and os.replace locally; on an object
        store a single upload is already all-or-nothing for readers."""
        full = self._full(rel)
        if self.local:
            Path(full).parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=Path(full).parent, prefix=f".{Path(full).name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
                os.replace(tmp, full)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return full
        with self.fs.open_output_stream(full) as f:
            f.write(data)
        return join_uri(self.uri, rel)

    def delete(self, rel: str) -> None:
        """Remove a file if it is there (a stale output that this run does not rewrite)."""
        if self.is_file(rel):
            self.fs.delete_file(self._full(rel))


def join_uri(base: str, name: str) -> str:
    """base/name for a path or a URI whose query (``?endpoint_override=...``) stays at the end."""
    path, sep, query = base.partition("?")
    return f"{path.rstrip('/')}/{name}{sep}{query}"


def split_uri(target: str) -> tuple[str, str]:
    """(parent, file name) of a path or URI, keeping a URI's query on the parent."""
    path, sep, query = target.partition("?")
    parent, _, name = path.rstrip("/").rpartition("/")
    return f"{parent}{sep}{query}", name


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------
# Reading the raw folder.


def _read_json(store: _Store, rel: str) -> Any:
    try:
        return json.loads(store.read(rel))
    except (OSError, ValueError):
        return None


def _read_results(store: _Store, rel: str) -> list[dict[str, Any]]:
    """result.json: one object per line; a line still being written (running trial) is skipped."""
    try:
        text = store.read(rel).decode("utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)  # Ray writes NaN/Infinity literally: json accepts them
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(_flatten(obj))
    return out


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "config":
            out.update(_flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _ray_state(store: _Store, entries: list[pafs.FileInfo]) -> dict[str, dict[str, Any]]:
    """trial_id -> {status, num_failures, start_time, logdir, config, error_file} from Ray's
    newest experiment_state-*.json (absent in a folder Ray has not checkpointed yet)."""
    states = sorted(e.base_name for e in entries if e.base_name.startswith("experiment_state")
                    and e.base_name.endswith(".json"))
    if not states:
        return {}
    data = _read_json(store, states[-1])
    out: dict[str, dict[str, Any]] = {}
    for item in (data or {}).get("trial_data", []):
        try:
            meta = json.loads(item[0]) if isinstance(item[0], str) else item[0]
            run = json.loads(item[1]) if len(item) > 1 and isinstance(item[1], str) else {}
        except (ValueError, TypeError, IndexError):
            continue
        tid = meta.get("trial_id")
        if not tid:
            continue
        out[tid] = {
            "status": meta.get("status"),
            "logdir": meta.get("relative_logdir"),
            "config": meta.get("config") if isinstance(meta.get("config"), dict) else None,
            "tag": meta.get("experiment_tag"),
            "num_failures": run.get("num_failures") if isinstance(run, dict) else None,
            "start_time": run.get("start_time") if isinstance(run, dict) else None,
            "error_file": run.get("error_filename") if isinstance(run, dict) else None,
        }
    return out


def _error_message(store: _Store, trial_dir: str | None, error_file: str | None) -> str | None:
    for rel in filter(None, [error_file and f"{trial_dir}/{Path(error_file).name}",
                             trial_dir and f"{trial_dir}/error.txt"]):
        try:
            text = store.read(rel).decode("utf-8", errors="replace")
        except OSError:
            continue
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if lines:
            return lines[-1][:500]
    return None


def _find_images(store: _Store, trial_dir: str, entries: list[pafs.FileInfo]) -> dict[str, str]:
    """kind -> relative path of the trial's final images: <trial>/images/, else the newest
    checkpoint_*/images/ (Ray keeps images inside the last checkpoint)."""
    names = {e.base_name: e for e in entries}
    candidates = []
    if "images" in names and names["images"].type == pafs.FileType.Directory:
        candidates.append(f"{trial_dir}/images")
    ckpts = sorted((e.base_name for e in entries if e.base_name.startswith("checkpoint_")
                    and e.type == pafs.FileType.Directory), reverse=True)
    candidates += [f"{trial_dir}/{c}/images" for c in ckpts]
    for rel in candidates:
        pngs = [e.base_name for e in store.list(rel) if e.base_name.lower().endswith(".png")]
        if pngs:
            return {Path(p).stem: f"{rel}/{p}" for p in sorted(pngs)}
    return {}


def _load_journal(store: _Store, name: str) -> tuple[list[optuna.trial.FrozenTrial], int | None, str | None]:
    """The trials and number of objectives of the Optuna study in optuna.journal, read from a
    private copy: the folder is never written to, and a running study keeps appending to it."""
    if not store.is_file("optuna.journal"):
        return [], None, None
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    data = store.read("optuna.journal")
    data = data[: data.rfind(b"\n") + 1]  # drop a record being written right now
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="analysis-journal-") as tmp:
        path = os.path.join(tmp, "optuna.journal")
        with open(path, "wb") as f:
            f.write(data)
        try:
            storage = JournalStorage(JournalFileBackend(path))
            names = optuna.get_all_study_names(storage)
            if not names:
                return [], None, None
            study = optuna.load_study(study_name=name if name in names else names[0], storage=storage)
            return study.get_trials(deepcopy=True), len(study.directions), None
        except Exception as exc:  # a corrupt journal must not stop the analysis
            return [], None, (f"optuna.journal could not be read ({_one_line(exc)}); "
                              "searched parameters inferred from the trials")


def _match_optuna(rows: list[dict[str, Any]], frozen: list[optuna.trial.FrozenTrial]) -> None:
    """Give each Ray trial the Optuna trial whose parameters its config holds (launch order
    breaks ties, e.g. the same configuration enqueued for several seeds)."""
    free = sorted(frozen, key=lambda t: t.number)
    by_number = {t.number: t for t in free}
    for row in rows:  # the launcher records the number in the trial's config: exact
        n = row["_config"].get("optuna_number")
        if _finite(n) and int(n) in by_number and by_number[int(n)] in free:
            t = by_number[int(n)]
            row["optuna_number"], row["optuna_state"] = t.number, t.state.name
            free.remove(t)
    for row in rows:
        cfg = row["_config"]
        if row["optuna_number"] is not None:
            continue
        for t in free:
            if t.params and all(_same(cfg.get(k, _MISSING), v) for k, v in t.params.items()):
                row["optuna_number"], row["optuna_state"] = t.number, t.state.name
                free.remove(t)
                break


_MISSING = object()


def _same(a: Any, b: Any) -> bool:
    if a is _MISSING:
        return False
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b


def _end_time(start: float | None, last: dict[str, Any]) -> float | None:
    """Ray's timestamp has whole seconds: take the later of it and start + wall time."""
    ends = [v for v in (last.get("timestamp"),) if _finite(v)]
    if start is not None and _finite(last.get("time_since_restore")):
        ends.append(start + float(last["time_since_restore"]))
    return max(ends) if ends else None


def _outcome(last: str | None, status: str | None, has_results: bool, error: str | None) -> str:
    if last in _FINAL_OUTCOMES:
        return last
    if status == "ERROR" or (error and status not in ("RUNNING", "PENDING")):
        return "error"
    if not has_results:
        return "pending" if status in (None, "PENDING", "PAUSED") else "running"
    if status == "TERMINATED":
        return "stopped"  # ended by a scheduler (ASHA) before its last epoch
    return "running"


def _objectives(study: dict[str, Any], metrics: list[str], n_directions: int | None) -> tuple[Objective, ...]:
    """From study.json (``objectives`` as [{metric, mode}] or {metric: mode}, or ``metric`` and
    ``mode``), else the usual pair: the first disentanglement score present up, rec_loss down."""
    raw = study.get("objectives")
    pairs: list[tuple[str, str]] = []
    if isinstance(raw, dict):
        pairs = [(str(k), str(v)) for k, v in raw.items()]
    elif isinstance(raw, list):
        for item in raw:
            if isinstance(item, dict) and "metric" in item:
                pairs.append((str(item["metric"]), str(item.get("mode", item.get("direction", "max")))))
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                pairs.append((str(item[0]), str(item[1])))
    elif study.get("metric") is not None:
        ms = study["metric"] if isinstance(study["metric"], list) else [study["metric"]]
        modes = study.get("mode", ["max"] * len(ms))
        modes = modes if isinstance(modes, list) else [modes]
        pairs = [(str(m), str(d)) for m, d in zip(ms, modes)]
    if pairs:
        return tuple(Objective(m, "minimize" if d.lower().startswith("min") else "maximize") for m, d in pairs)
    score = next((m for m in _SCORE_PREFERENCE if m in metrics), None)
    out = []
    if score:
        out.append(Objective(score, "maximize"))
    if "rec_loss" in metrics and (n_directions is None or n_directions != 1 or not score):
        out.append(Objective("rec_loss", "minimize"))
    return tuple(out)


def _metric_order(keys: set[str]) -> list[str]:
    known = [k for k in _LOSS_ORDER + DISENTANGLEMENT_METRICS + UNSUPERVISED_METRICS if k in keys]
    details = sorted(k for k in keys if _DETAIL.match(k)) + [k for k in THROUGHPUT_KEYS if k in keys]
    return known + sorted(keys - set(known) - set(details)) + details


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _finite(v: Any) -> bool:
    return _is_number(v) and math.isfinite(float(v))


def _column(values: list[Any]) -> pd.Series:
    """A config column with one plain type: numbers as float (int when all integral), text as
    str, lists and dicts as JSON text, all-missing as null."""
    present = [v for v in values if v is not None]
    if not present:
        return pd.Series([None] * len(values), dtype=object)
    if all(isinstance(v, (bool, np.bool_)) for v in present):
        return pd.Series([None if v is None else bool(v) for v in values], dtype="boolean")
    if all(_is_number(v) for v in present):
        if all(isinstance(v, (int, np.integer)) for v in present):
            return pd.Series(values, dtype="Int64")
        return pd.Series([np.nan if v is None else float(v) for v in values], dtype="float64")
    return pd.Series([None if v is None else (v if isinstance(v, str) else json.dumps(v, sort_keys=True))
                      for v in values], dtype="str")


def _infer_distributions(trials: pd.DataFrame) -> dict[str, BaseDistribution]:
    """Searched parameters when there is no journal: config keys that vary across trials."""
    out: dict[str, BaseDistribution] = {}
    for col in trials.columns:
        if not col.startswith("config/") or col.removeprefix("config/") in _BOOKKEEPING:
            continue
        values = trials[col].dropna()
        if values.nunique() < 2:
            continue
        name = col.removeprefix("config/")
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            out[name] = CategoricalDistribution(sorted(values.unique().tolist(), key=str))
            continue
        lo, hi = values.min(), values.max()
        log = bool(lo > 0 and hi / lo >= 100)
        if pd.api.types.is_integer_dtype(values):
            out[name] = IntDistribution(int(lo), int(hi), log=log)
        else:
            out[name] = FloatDistribution(float(lo), float(hi), log=log)
    return out


def _union_distributions(frozen: list[optuna.trial.FrozenTrial]) -> dict[str, BaseDistribution]:
    """One distribution per parameter covering every trial's (enqueued points may sit outside
    the space's range, and a space may have changed between restarts)."""
    out: dict[str, BaseDistribution] = {}
    for t in frozen:
        for name, d in t.distributions.items():
            cur = out.get(name)
            if cur is None:
                out[name] = d
            elif isinstance(d, CategoricalDistribution) and isinstance(cur, CategoricalDistribution):
                extra = [c for c in d.choices if c not in cur.choices]
                if extra:
                    out[name] = CategoricalDistribution(list(cur.choices) + extra)
            elif isinstance(d, type(cur)) and isinstance(d, (FloatDistribution, IntDistribution)):
                lo, hi = min(cur.low, d.low), max(cur.high, d.high)
                if isinstance(d, IntDistribution):
                    out[name] = IntDistribution(lo, hi, log=cur.log and d.log)
                else:
                    out[name] = FloatDistribution(lo, hi, log=cur.log and d.log)
    return out


# ---------------------------------------------------------------------------------------------
# Public API.


def _trial_row(rec: dict[str, Any], store: _Store, metrics: list[str]) -> dict[str, Any]:
    """One row of trials.parquet from a trial's results, config and Ray state."""
    results, s, config, tdir = rec["results"], rec["state"], rec["_config"], rec["trial_dir"]
    last = results[-1] if results else {}
    error = next((r["error"] for r in reversed(results) if isinstance(r.get("error"), str) and r["error"]), None)
    error = error or (_error_message(store, tdir, s.get("error_file")) if tdir else None)
    outcome = _outcome(last.get("outcome") if isinstance(last.get("outcome"), str) else None,
                       s.get("status"), bool(results), error)
    div = next((r for r in results if r.get("outcome") == "diverged"), None)
    div_epoch = None
    if div is not None:
        div_epoch = div.get("diverged_epoch") if _finite(div.get("diverged_epoch")) else div.get("epoch")
    restarts = max(0, sum(1 for r in results if r.get("iterations_since_restore") == 1) - 1)
    # Ray counts every failure, also the last one of a trial that ends in ERROR (not retried).
    failures = s.get("num_failures")
    if _finite(failures) and s.get("status") == "ERROR":
        failures = max(0, int(failures) - 1)
    first_ts = next((r["timestamp"] for r in results if _finite(r.get("timestamp"))), None)
    first_dt = results[0].get("time_this_iter_s") if results else None
    start = s.get("start_time") if _finite(s.get("start_time")) else (
        first_ts - (first_dt if _finite(first_dt) else 0) if first_ts is not None else None)
    row: dict[str, Any] = {
        "trial_id": rec["trial_id"],
        "trial_dir": tdir,
        "_tag": s.get("tag"),
        "_config": config,
        "optuna_number": None,
        "optuna_state": None,
        "variant": config.get("variant"),
        "seed": config.get("seed"),
        "config_group": config.get("config_group"),
        "outcome": outcome,
        "ray_status": s.get("status"),
        "diverged": outcome == "diverged",
        "diverged_epoch": int(div_epoch) if _finite(div_epoch) else None,
        "error": error,
        "epochs": int(last["epoch"]) if _finite(last.get("epoch")) else None,
        "n_reports": len(results),
        "wall_time_s": float(last["time_total_s"]) if _finite(last.get("time_total_s")) else None,
        "started_at": start,
        "ended_at": _end_time(start, last),
        "node_ip": last.get("node_ip"),
        "hostname": last.get("hostname"),
        "gpu_share": float(last["gpu_share"]) if _finite(last.get("gpu_share")) else None,
        "retries": int(failures) if _finite(failures) else restarts,
        "restarts": restarts,
    }
    # Final values: the last finite one of each key (metrics may be measured every k epochs),
    # never from a failure report (its objectives are sentinels: score 0, loss 1e9). A diverged
    # trial has none: they would describe a model that no longer exists (history keeps them).
    measured = [r for r in results if r.get("outcome") not in _FAILED]
    for m in metrics:
        row[m] = None if outcome == "diverged" else next(
            (float(r[m]) for r in reversed(measured) if _finite(r.get(m))), None)
    if tdir:
        for kind, rel in _find_images(store, tdir, rec["entries"]).items():
            row[f"image/{kind}"] = rel
    return row


def _history_rows(rec: dict[str, Any], metrics: list[str]) -> list[dict[str, Any]]:
    """Rows of history.parquet: one per epoch; a restarted trial's later report of an epoch wins."""
    config = rec["_config"]
    per_epoch: dict[Any, dict[str, Any]] = {}
    for r in rec["results"]:
        per_epoch[r.get("epoch") if _finite(r.get("epoch")) else r.get("training_iteration")] = r
    out = []
    for r in per_epoch.values():
        h = {
            "trial_id": rec["trial_id"], "variant": config.get("variant"), "seed": config.get("seed"),
            "epoch": r.get("epoch") if _finite(r.get("epoch")) else None,
            "training_iteration": r.get("training_iteration") if _finite(r.get("training_iteration")) else None,
            "time_total_s": float(r["time_total_s"]) if _finite(r.get("time_total_s")) else None,
            "timestamp": r.get("timestamp") if _finite(r.get("timestamp")) else None,
            "outcome": r.get("outcome") if isinstance(r.get("outcome"), str) else None,
            "node_ip": r.get("node_ip"),
            "gpu_share": float(r["gpu_share"]) if _finite(r.get("gpu_share")) else None,
        }
        # A failure report carries sentinels so that Optuna never sees a missing key: not data.
        failed = h["outcome"] in _FAILED
        # Between evaluations a report repeats the last metrics (metrics_epoch < epoch): a curve
        # must show them at the epoch they were measured, not as a flat line.
        stale = _finite(r.get("metrics_epoch")) and _finite(h["epoch"]) and r["metrics_epoch"] != h["epoch"]
        for m in metrics:
            v = r.get(m)
            h[m] = float(v) if _is_number(v) and not failed and not (stale and _evaluated(m)) else None
        out.append(h)
    return out


def load_experiment(path: str | os.PathLike) -> Experiment:
    """Read an experiment folder (local path or ``s3://bucket/prefix``) into an Experiment.

    Works on a study still running: trials without results yet appear as ``pending`` or
    ``running``, and a result line being written is ignored. Raises ExperimentError (one line)
    when the path is missing or holds no experiment.
    """
    store = _Store.open(path)
    text = os.fspath(path)
    try:
        root = store.info()
    except OSError as exc:
        raise ExperimentError(f"cannot read {text!r}: {_one_line(exc)}") from None
    if root.type == pafs.FileType.NotFound:
        raise ExperimentError(f"experiment folder {text!r} does not exist; pass <storage>/<name> as given to python -m study.launch")
    if root.type != pafs.FileType.Directory:
        raise ExperimentError(f"{text!r} is a file, not an experiment folder; pass <storage>/<name> as given to python -m study.launch")

    entries = store.list()
    names = {e.base_name for e in entries}
    trial_dirs = []
    for e in entries:
        if e.type == pafs.FileType.Directory and not e.base_name.startswith("."):
            inner = {i.base_name: i for i in store.list(e.base_name)}
            if "params.json" in inner or "result.json" in inner:
                trial_dirs.append((e.base_name, list(inner.values())))
    state = _ray_state(store, entries)
    if not ({"study.json", "optuna.journal"} & names or trial_dirs or state):
        raise ExperimentError(
            f"{text!r} is not an experiment folder: no study.json, optuna.journal or trial "
            "folders with params.json/result.json; pass <storage>/<name> as given to python -m study.launch")

    study = _read_json(store, "study.json") if "study.json" in names else None
    study = study if isinstance(study, dict) else {}
    name = str(study.get("name") or Path(store.root).name)
    notes: list[str] = []
    if "study.json" in names and not study:
        notes.append("study.json could not be read")

    # One record per trial, from its folder and from Ray's experiment state.
    by_dir = {d: inner for d, inner in trial_dirs}
    logdir_of = {tid: s["logdir"] for tid, s in state.items() if s.get("logdir")}
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for trial_dir, inner in trial_dirs:
        results = _read_results(store, f"{trial_dir}/result.json")
        params = _read_json(store, f"{trial_dir}/params.json")
        tid = next((r["trial_id"] for r in results if r.get("trial_id")), None)
        if tid is None:
            tid = next((t for t, d in logdir_of.items() if d == trial_dir), None) or trial_dir
        seen.add(tid)
        records.append({"trial_id": str(tid), "trial_dir": trial_dir, "results": results,
                        "config": params if isinstance(params, dict) else None,
                        "entries": inner, "state": state.get(tid, {})})
    for tid, s in state.items():  # trials Ray knows but has not started yet
        if tid not in seen and s.get("logdir") not in by_dir:
            records.append({"trial_id": tid, "trial_dir": None, "results": [], "config": None,
                            "entries": [], "state": s})

    rows, hist = [], []
    metric_keys: set[str] = set()
    for rec in records:
        results, s = rec["results"], rec["state"]
        for r in results:
            metric_keys.update(k for k, v in r.items() if k not in _NOT_METRICS and _is_number(v))
        config = rec["config"] or s.get("config") or next(
            (r["config"] for r in reversed(results) if isinstance(r.get("config"), dict)), {})
        rec["_config"] = config
    metrics = _metric_order(metric_keys)

    for rec in records:
        rows.append(_trial_row(rec, store, metrics))
        hist.extend(_history_rows(rec, metrics))

    # Launch order: Ray's experiment tag "<n>_..." (also in the folder name), then start time.
    def order(row: dict[str, Any]) -> tuple:
        tag = row["_tag"] or ""
        m = re.match(r"(\d+)_", tag) or re.search(rf"_{re.escape(row['trial_id'])}_(\d+)", row["trial_dir"] or "")
        return (int(m.group(1)) if m else 1 << 30, row["started_at"] or math.inf, row["trial_id"])

    rows.sort(key=order)
    for i, row in enumerate(rows):
        row["trial_number"] = i

    frozen, n_dir, note = _load_journal(store, name)
    if note:
        notes.append(note)
    _match_optuna(rows, frozen)

    trials = _trials_frame(rows, metrics, study)
    history = _history_frame(hist, metrics, [r["trial_id"] for r in rows])
    searched = _union_distributions(frozen) if frozen else {}
    with_params = [t for t in frozen if t.params]
    conditional = tuple(k for k in searched if any(k not in t.params for t in with_params))
    if not searched:
        searched = _infer_distributions(trials)
    objectives = _objectives(study, metrics, n_dir)
    return Experiment(path=text, name=name, study=study, trials=trials, history=history,
                      objectives=objectives, searched=searched, conditional=conditional, notes=notes)


_TRIAL_FIXED = (
    "trial_id", "trial_dir", "trial_number", "optuna_number", "optuna_state", "variant", "seed",
    "config_group", "outcome", "ray_status", "diverged", "diverged_epoch", "error", "epochs", "n_reports",
    "wall_time_s", "started_at", "ended_at", "node_ip", "hostname", "gpu_share", "retries", "restarts",
)


def _trials_frame(rows: list[dict[str, Any]], metrics: list[str], study: dict[str, Any]) -> pd.DataFrame:
    n = len(rows)
    cols: dict[str, pd.Series] = {}
    get = lambda k: [r.get(k) for r in rows]  # noqa: E731
    for k in ("trial_id", "trial_dir", "variant", "outcome", "ray_status", "error", "node_ip", "hostname", "optuna_state"):
        cols[k] = pd.Series([None if v is None else str(v) for v in get(k)], dtype="str")
    for k in ("trial_number", "optuna_number", "seed", "config_group", "diverged_epoch", "epochs", "n_reports", "retries", "restarts"):
        cols[k] = pd.Series([int(v) if _finite(v) else None for v in get(k)], dtype="Int64")
    cols["diverged"] = pd.Series(get("diverged"), dtype="bool")
    for k in ("wall_time_s", "gpu_share"):
        cols[k] = pd.Series([float(v) if _finite(v) else np.nan for v in get(k)], dtype="float64")
    for k in ("started_at", "ended_at"):
        cols[k] = pd.to_datetime(pd.Series([float(v) if _finite(v) else np.nan for v in get(k)], dtype="float64"),
                                 unit="s", utc=True).astype("datetime64[ms, UTC]")
    frame = pd.DataFrame({k: cols[k] for k in _TRIAL_FIXED}, index=pd.RangeIndex(n))
    extra: dict[str, pd.Series] = {}
    config_keys = sorted({k for r in rows for k in r["_config"]})
    for k in config_keys:
        extra[f"config/{k}"] = _column([r["_config"].get(k) for r in rows])
    for m in metrics:
        extra[m] = pd.Series([np.nan if r.get(m) is None else r[m] for r in rows], dtype="float64")
    kinds = sorted({k for r in rows for k in r if k.startswith("image/")},
                   key=lambda c: (list(IMAGE_KINDS).index(c[6:]) if c[6:] in IMAGE_KINDS else 99, c))
    for k in kinds:
        extra[k] = pd.Series([r.get(k) for r in rows], dtype="str")
    versions = study.get("versions") if isinstance(study.get("versions"), dict) else {}
    for pkg in sorted(versions):
        extra[f"version/{pkg}"] = pd.Series([str(versions[pkg])] * n, dtype="str")
    if extra:
        frame = pd.concat([frame, pd.DataFrame(extra, index=frame.index)], axis=1)
    return frame


def _history_frame(hist: list[dict[str, Any]], metrics: list[str], order: list[str]) -> pd.DataFrame:
    rank = {t: i for i, t in enumerate(order)}
    hist = sorted(hist, key=lambda h: (rank.get(h["trial_id"], 1 << 30),
                                       h["epoch"] if h["epoch"] is not None else math.inf,
                                       h["training_iteration"] or 0))
    get = lambda k: [h.get(k) for h in hist]  # noqa: E731
    cols: dict[str, pd.Series] = {
        "trial_id": pd.Series(get("trial_id"), dtype="str"),
        "variant": pd.Series([None if v is None else str(v) for v in get("variant")], dtype="str"),
        "seed": pd.Series([int(v) if _finite(v) else None for v in get("seed")], dtype="Int64"),
        "epoch": pd.Series([int(v) if _finite(v) else None for v in get("epoch")], dtype="Int64"),
        "training_iteration": pd.Series([int(v) if _finite(v) else None for v in get("training_iteration")], dtype="Int64"),
        "time_total_s": pd.Series([np.nan if v is None else v for v in get("time_total_s")], dtype="float64"),
        "timestamp": pd.to_datetime(pd.Series([float(v) if _finite(v) else np.nan for v in get("timestamp")],
                                              dtype="float64"), unit="s", utc=True).astype("datetime64[ms, UTC]"),
        "outcome": pd.Series(get("outcome"), dtype="str"),
        "node_ip": pd.Series([None if v is None else str(v) for v in get("node_ip")], dtype="str"),
        "gpu_share": pd.Series([np.nan if v is None else v for v in get("gpu_share")], dtype="float64"),
    }
    for m in metrics:
        cols[m] = pd.Series([np.nan if v is None else v for v in get(m)], dtype="float64")
    return pd.DataFrame(cols, index=pd.RangeIndex(len(hist)))


def _metadata(exp: Experiment) -> bytes:
    return json.dumps({
        "name": exp.name,
        "path": exp.path,
        "study": exp.study,
        "objectives": [list(o) for o in exp.objectives],
        "searched": [[k, distribution_to_json(d)] for k, d in exp.searched.items()],
        "conditional": list(exp.conditional),
        "notes": exp.notes,
    }, sort_keys=True, default=str).encode()


def _parquet_bytes(frame: pd.DataFrame, meta: bytes) -> bytes:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _META_KEY: meta})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def write_results(path: str | os.PathLike, out: str | os.PathLike | None = None,
                  *, experiment: Experiment | None = None) -> tuple[str, str]:
    """Write ``trials.parquet`` and ``history.parquet`` for the experiment at ``path``.

    ``out`` is the folder to write to (default: the experiment folder itself, local or S3).
    Each file is written atomically (a temporary file, then os.replace), and writing twice on
    an unchanged folder gives byte-identical files. Returns the two paths written.
    """
    exp = experiment if experiment is not None else load_experiment(path)
    store = _Store.open(out if out is not None else path)
    meta = _metadata(exp)
    return (store.write_atomic(TRIALS_FILE, _parquet_bytes(exp.trials, meta)),
            store.write_atomic(HISTORY_FILE, _parquet_bytes(exp.history, meta)))


def read_results(path: str | os.PathLike, *, experiment_path: str | None = None) -> Experiment:
    """The Experiment stored by write_results in the folder ``path`` (images are read from
    ``experiment_path``, by default the experiment folder recorded in the files)."""
    store = _Store.open(path)
    try:
        trials_t = pq.read_table(io.BytesIO(store.read(TRIALS_FILE)))
        history_t = pq.read_table(io.BytesIO(store.read(HISTORY_FILE)))
    except (OSError, pa.ArrowInvalid) as exc:
        raise ExperimentError(f"no readable {TRIALS_FILE}/{HISTORY_FILE} in {os.fspath(path)!r}: {_one_line(exc)}") from None
    meta = json.loads((trials_t.schema.metadata or {}).get(_META_KEY, b"{}"))
    return Experiment(
        path=experiment_path or meta.get("path") or os.fspath(path),
        name=meta.get("name", Path(store.root).name),
        study=meta.get("study", {}),
        trials=trials_t.to_pandas(),
        history=history_t.to_pandas(),
        objectives=tuple(Objective(*o) for o in meta.get("objectives", [])),
        searched={k: json_to_distribution(v) for k, v in meta.get("searched", [])},
        conditional=tuple(meta.get("conditional", [])),
        notes=list(meta.get("notes", [])),
    )


def run_command(write: Callable[[], Any], what: str) -> int:
    """The analysis commands' ending: print what ``write()`` returns (a path or paths), or one
    error line on stderr and exit code 2 for an unreadable experiment or an unwritable target."""
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


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m analysis.results",
                                     description="Write trials.parquet and history.parquet for an experiment.")
    parser.add_argument("experiment", help="experiment folder (<storage>/<name>), local or s3://")
    parser.add_argument("--out", default=None, help="folder to write to (default: the experiment folder)")
    args = parser.parse_args()
    sys.exit(run_command(lambda: write_results(args.experiment, args.out), "the tables"))
