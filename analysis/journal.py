"""The Optuna side of an experiment: its trials from ``optuna.journal``, which Ray trial each
one is, and the distributions of the searched parameters."""

from __future__ import annotations

import math
import os
import tempfile
from typing import Any

import optuna
import pandas as pd
import pyarrow.fs as pafs
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from analysis.experiment import one_line
from analysis.tables import finite
from trainables import storage
from trainables.vocabulary import JOURNAL_FILE, OPTUNA_NUMBER, RETRY_OF, TRIAL_KEYS

# Configuration keys that are not parameters of the model: never "searched".
_BOOKKEEPING = frozenset({*TRIAL_KEYS, "seed", "data_root", "device"})


def read_journal(fs: pafs.FileSystem, root: str, name: str) -> tuple[list[FrozenTrial], int | None, str | None]:
    """(trials, number of objectives, problem) of the Optuna study ``name`` (else the journal's
    first), read from a private copy: the folder is never written to, and a running study keeps
    appending to it. A journal that cannot be parsed gives no trials and the problem, one line."""
    try:
        with fs.open_input_stream(storage.join(root, JOURNAL_FILE)) as f:
            data = f.read()
    except OSError as exc:
        return [], None, f"could not be read ({one_line(exc)})"
    data = data[: data.rfind(b"\n") + 1]  # drop a record being written right now
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="analysis-journal-") as tmp:
        path = os.path.join(tmp, JOURNAL_FILE)
        with open(path, "wb") as f:
            f.write(data)
        try:
            backend = JournalStorage(JournalFileBackend(path))
            names = optuna.get_all_study_names(backend)
            if not names:
                return [], None, None
            study = optuna.load_study(study_name=name if name in names else names[0], storage=backend)
            return study.get_trials(deepcopy=True), len(study.directions), None
        except Exception as exc:  # a corrupt journal must not stop the analysis
            return [], None, (f"could not be read ({one_line(exc)}); "
                              "searched parameters inferred from the trials")


def match_optuna(rows: list[dict[str, Any]], frozen: list[FrozenTrial]) -> None:
    """Give each Ray trial row (``optuna_number``, ``optuna_state``, ``retry_of``) of its Optuna
    trial: the launcher's verdict's number, else the number it put into the trial's config --
    where --retry-failed trained a FAIL trial to the end, the COMPLETE trial that supersedes it
    (``RETRY_OF``) --, else the first free trial whose parameters the config holds (launch order
    breaks ties: one configuration enqueued for several seeds)."""
    by_number = {t.number: t for t in frozen}
    retries = {t.user_attrs[RETRY_OF]: t for t in frozen
               if t.state == TrialState.COMPLETE and isinstance(t.user_attrs.get(RETRY_OF), int)}
    taken: set[int] = set()
    for row in rows:
        n = row["optuna_number"] if row["optuna_number"] is not None else row["_config"].get(OPTUNA_NUMBER)
        trial = by_number.get(int(n)) if finite(n) else None
        if trial is None or trial.number in taken:
            row["optuna_number"] = None
            continue
        if trial.state == TrialState.FAIL and trial.number in retries:
            row["retry_of"], trial = trial.number, retries[trial.number]
        if row["retry_of"] is not None:
            taken.add(int(row["retry_of"]))  # the superseded FAIL trial is no other row's
        _take(row, trial, taken)
    free = [t for t in sorted(frozen, key=lambda t: t.number) if t.number not in taken]
    for row in rows:
        if row["optuna_number"] is not None:
            continue
        cfg = row["_config"]
        match = next((t for t in free if t.number not in taken and t.params
                      and all(k in cfg and _same(cfg[k], v) for k, v in t.params.items())), None)
        if match is not None:
            _take(row, match, taken)


def _take(row: dict[str, Any], trial: FrozenTrial, taken: set[int]) -> None:
    row["optuna_number"], row["optuna_state"] = trial.number, trial.state.name
    taken.add(trial.number)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b


def union_distributions(frozen: list[FrozenTrial]) -> dict[str, BaseDistribution]:
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
                kind = type(d)
                out[name] = kind(min(cur.low, d.low), max(cur.high, d.high), log=cur.log and d.log)
    return out


def conditional_params(searched: dict[str, BaseDistribution], frozen: list[FrozenTrial]) -> tuple[str, ...]:
    """Searched parameters that some Optuna trial with parameters does not have."""
    with_params = [t for t in frozen if t.params]
    return tuple(k for k in searched if any(k not in t.params for t in with_params))


def infer_distributions(trials: pd.DataFrame) -> dict[str, BaseDistribution]:
    """Searched parameters when there is no journal: config keys that vary across trials."""
    out: dict[str, BaseDistribution] = {}
    for col in ["variant", *(c for c in trials.columns if c.startswith("config/"))]:
        name = col.removeprefix("config/")
        if col not in trials or name in _BOOKKEEPING:
            continue
        values = trials[col].dropna()
        if values.nunique() < 2:
            continue
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
