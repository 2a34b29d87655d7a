"""Read an experiment folder (finished or still running, local or ``s3://``) into an Experiment.

The folder is the one ``python -m study.launch`` writes (docs/architecture.md, "Experiment
folder"): ``study.json``, ``optuna.journal``, Ray Tune's experiment state and one folder per
trial holding Ray's ``params.json`` and ``result.json`` (one JSON object per ``tune.report``),
checkpoints and the final ``images/``. Nothing is written into it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from analysis.experiment import Damage, Experiment, ExperimentError, Objective, one_line
from analysis.journal import conditional_params, infer_distributions, match_optuna, read_journal, union_distributions
from analysis.tables import (
    TrialRecord,
    history_frame,
    history_rows,
    metric_keys,
    trial_rows,
    trials_frame,
    with_params,
)
from study.ray_state import RayTrial, read_ray_trials
from trainables import storage
from trainables.lock_holder import launch_runs, read_holder
from trainables.vocabulary import (
    DEFAULT_SCORE,
    DISENTANGLEMENT_METRICS,
    ERROR_FILE,
    IMAGES_DIR,
    JOURNAL_FILE,
    LOCK_FILE,
    PARAMS_FILE,
    RECONSTRUCTION,
    RECORD_JOURNAL,
    RECORD_RUNS,
    RECORD_TRIALS,
    RESULT_FILE,
    RUN_LOCK_TOKEN,
    STUDY_FILE,
    StudyStatus,
)

_CHECKPOINT_PREFIX = "checkpoint_"  # Ray Tune's checkpoint folders: checkpoint_000000, ...
_HOW = "pass <storage>/<name> as given to python -m study.launch"


def load_experiment(path: str | os.PathLike) -> Experiment:
    """Read an experiment folder (local path or ``s3://bucket/prefix``) into an Experiment.

    Works on a study still running: trials without results yet appear as ``pending`` or
    ``running``, and a result line being written is ignored; once no launch runs the study, an
    unfinished trial is ``interrupted``, and the launcher's verdicts in study.json (``trials``)
    decide each trial's outcome and Optuna trial. A damaged file (a result.json cut
    off or corrupt in a trial that no longer runs, a params.json, study.json or journal that is
    not JSON) is listed in ``Experiment.damaged`` and its trial becomes ``unreadable``. Raises
    ExperimentError (one line) when the path is missing or holds no experiment.
    """
    text = os.fspath(path)
    fs, root = _open(text)
    entries = _list(fs, root)
    names = {e.base_name for e in entries}
    study, damaged = _study_record(fs, root, names)
    ray = read_ray_trials(path) or {}
    running = _launch_runs(text, root, study)
    records = _trial_records(fs, root, entries, ray, study_running=running)
    verdicts = _verdicts(study)
    for rec in records:
        rec.verdict = verdicts.get(rec.trial_id)
    if not ({STUDY_FILE, JOURNAL_FILE} & names or any(r.trial_dir for r in records) or ray):
        raise ExperimentError(f"{text!r} is not an experiment folder: no {STUDY_FILE}, {JOURNAL_FILE} or trial "
                              f"folders with {PARAMS_FILE}/{RESULT_FILE}; {_HOW}")
    name = str(study.get("name") or Path(root).name)
    frozen, n_directions, note = read_journal(fs, root, name) if JOURNAL_FILE in names else ([], None, None)
    damaged += [Damage(JOURNAL_FILE, note)] if note else []
    damaged += [Damage(*d) for r in records for d in r.damaged]

    metrics = metric_keys(records)
    objs = objectives(study, metrics, n_directions)
    rows = trial_rows(records, metrics, launch_runs=running)
    match_optuna(rows, frozen)
    trials = trials_frame(rows, metrics, study, [(o.metric, o.direction == "maximize") for o in objs])
    searched = union_distributions(frozen) or infer_distributions(trials)
    history = history_frame([h for rec in records for h in history_rows(rec, metrics)], metrics,
                            [r["trial_id"] for r in rows])
    return Experiment(path=text, name=name, study=study, trials=trials,
                      history=with_params(history, trials, list(searched)), objectives=objs, searched=searched,
                      conditional=conditional_params(searched, frozen),
                      notes=[f"{d.file}: {d.problem}" for d in damaged], damaged=damaged, launch_runs=running)


def _study_record(fs: pafs.FileSystem, root: str, names: set[str]) -> tuple[dict[str, Any], list[Damage]]:
    """study.json ({} when absent) and, when it is not a JSON object, its damage."""
    if STUDY_FILE not in names:
        return {}, []
    study = _read_json(fs, storage.join(root, STUDY_FILE))
    if isinstance(study, dict):
        return study, []
    return {}, [Damage(STUDY_FILE, "not a JSON object; the study's settings and objectives are not shown")]


def _launch_runs(text: str, root: str, study: dict[str, Any]) -> bool:
    """Whether a launch runs the study now. Without a study.json nothing says otherwise: Ray's
    word stands. On object storage the lock stays next to the journal on the launch's machine
    (--journal-dir): read there -- when it is the last launch's, by its token -- it tells a
    killed driver's `running` from a live one; anywhere else study.json's word stands."""
    if not study:
        return True
    if not storage.is_remote(text):
        return launch_runs(study.get("status"), read_holder(storage.join(root, LOCK_FILE)))
    token, journal = _last_run(study).get(RUN_LOCK_TOKEN), study.get(RECORD_JOURNAL)
    holder = read_holder(Path(journal).parent / LOCK_FILE) if token and isinstance(journal, str) else None
    if holder is not None and holder.token == token:
        return launch_runs(study.get("status"), holder)
    return study.get("status") == StudyStatus.RUNNING.value


def _last_run(study: dict[str, Any]) -> dict[str, Any]:
    """The last launch's entry of study.json's ``runs`` ({} when there is none)."""
    runs = study.get(RECORD_RUNS)
    return runs[-1] if isinstance(runs, list) and runs and isinstance(runs[-1], dict) else {}


def _verdicts(study: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """study.json's ``trials`` by trial id, when the last run wrote them as it ended; a run that
    was killed, failed or Ctrl-C'd twice leaves the previous run's, which are out of date."""
    last_run = _last_run(study)
    entries = study.get(RECORD_TRIALS)
    if last_run.get("status") != study.get("status") or not isinstance(entries, list):
        return {}
    return {str(e["trial_id"]): e for e in entries if isinstance(e, dict) and e.get("trial_id")}


def _open(text: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, root) of an existing folder; ExperimentError otherwise."""
    try:
        fs, root = storage.filesystem(text)
        kind = fs.get_file_info(root).type
    except (OSError, ValueError) as exc:  # pyarrow: an unknown scheme, a bucket it cannot reach
        raise ExperimentError(f"cannot open {text!r}: {one_line(exc)}") from None
    if kind == pafs.FileType.NotFound:
        raise ExperimentError(f"experiment folder {text!r} does not exist; {_HOW}")
    if kind != pafs.FileType.Directory:
        raise ExperimentError(f"{text!r} is a file, not an experiment folder; {_HOW}")
    return fs, root.rstrip("/")


def _list(fs: pafs.FileSystem, folder: str) -> list[pafs.FileInfo]:
    selector = pafs.FileSelector(folder, allow_not_found=True, recursive=False)
    return sorted(fs.get_file_info(selector), key=lambda i: i.base_name)


def _read(fs: pafs.FileSystem, path: str) -> bytes | None:
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except OSError:
        return None


def _read_json(fs: pafs.FileSystem, path: str) -> Any:
    data = _read(fs, path)
    try:
        return None if data is None else json.loads(data)
    except ValueError:
        return None


# --- trials ---------------------------------------------------------------------------------------
def _trial_records(fs: pafs.FileSystem, root: str, entries: list[pafs.FileInfo],
                   ray: dict[str, RayTrial], *, study_running: bool) -> list[TrialRecord]:
    """One record per trial folder (a folder with params.json or result.json), then one per
    trial Ray holds but has not started."""
    by_logdir = {t.logdir: tid for tid, t in ray.items() if t.logdir}
    records = []
    for e in entries:
        if e.type != pafs.FileType.Directory or e.base_name.startswith("."):
            continue
        inner = _list(fs, storage.join(root, e.base_name))
        if {PARAMS_FILE, RESULT_FILE} & {i.base_name for i in inner}:
            records.append(_trial_record(fs, root, e.base_name, inner, ray, by_logdir, study_running))
    started = {r.trial_dir for r in records}
    seen = {r.trial_id for r in records}
    records += [TrialRecord(tid, None, [], t.config or {}, t, {}, None) for tid, t in ray.items()
                if tid not in seen and t.logdir not in started]
    return records


def _trial_record(fs: pafs.FileSystem, root: str, trial_dir: str, inner: list[pafs.FileInfo],
                  ray: dict[str, RayTrial], by_logdir: dict[str, str], study_running: bool) -> TrialRecord:
    folder = storage.join(root, trial_dir)
    names = {i.base_name for i in inner}
    state = ray.get(by_logdir.get(trial_dir, ""))
    # Only a trial that may still run -- its study running, Ray not saying it ended -- may be
    # writing its last line; in any other a line cut off is damage.
    writing = study_running and (state is None or state.status in (None, "RUNNING", "PENDING"))
    results, result_damage = _result_lines(_read(fs, storage.join(folder, RESULT_FILE)), writing=writing)
    params = _read_json(fs, storage.join(folder, PARAMS_FILE)) if PARAMS_FILE in names else None
    damaged = [(f"{trial_dir}/{RESULT_FILE}", result_damage)] if result_damage else []
    if PARAMS_FILE in names and not isinstance(params, dict):
        damaged.append((f"{trial_dir}/{PARAMS_FILE}", "not a JSON object; the configuration is taken from Ray's "
                                                      "record or the results"))
    tid = str(next((r["trial_id"] for r in results if r.get("trial_id")), None) or by_logdir.get(trial_dir)
              or trial_dir)
    state = ray.get(tid)
    config = (params if isinstance(params, dict) else None) or (state.config if state else None) or next(
        (r["config"] for r in reversed(results) if isinstance(r.get("config"), dict)), {})
    ray_error = Path(state.error_file).name if state and state.error_file else None
    error_names = [n for n in dict.fromkeys((ray_error, ERROR_FILE)) if n in names]
    has_error = any(isinstance(r.get("error"), str) and r["error"] for r in results)
    return TrialRecord(trial_id=tid, trial_dir=trial_dir, results=results, config=config, ray=state,
                       images=_images(fs, root, trial_dir, inner),
                       error_file=None if has_error else _error_message(fs, folder, error_names),
                       damaged=tuple(damaged))


def _result_lines(data: bytes | None, *, writing: bool) -> tuple[list[dict[str, Any]], str | None]:
    """result.json: one object per line, and what is damaged (None: nothing). A last line with
    no newline is one Ray is writing when the trial may still run (skipped), else one cut off."""
    lines = (data or b"").split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    out, bad = [], []
    for number, line in enumerate([*lines, tail], start=1):
        if not line.strip():
            continue
        obj = _json_object(line)
        if obj is not None:
            out.append(_flatten(obj))
        elif number <= len(lines) or not writing:
            bad.append(number)
    if not bad:
        return out, None
    where = f"line {bad[0]}" if len(bad) == 1 else f"lines {', '.join(map(str, bad[:5]))}" + (
        ", ..." if len(bad) > 5 else "")
    return out, (f"{where} of {len(lines) + bool(tail.strip())} not a whole JSON object (cut off or corrupt); "
                 "the trial is shown as unreadable")


def _json_object(line: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(line)  # Ray writes NaN/Infinity literally: json reads them
    except ValueError:  # also bytes that are not UTF-8
        return None
    return obj if isinstance(obj, dict) else None


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "config":
            out.update(_flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _error_message(fs: pafs.FileSystem, folder: str, names: Sequence[str]) -> str | None:
    """The last line of the first readable error file (Ray's, then error.txt)."""
    for name in names:
        data = _read(fs, storage.join(folder, name))
        lines = [ln.strip() for ln in (data or b"").decode("utf-8", errors="replace").splitlines() if ln.strip()]
        if lines:
            return lines[-1][:500]
    return None


def _images(fs: pafs.FileSystem, root: str, trial_dir: str, inner: list[pafs.FileInfo]) -> dict[str, str]:
    """kind -> relative path of the trial's final images: <trial>/images/, else the newest
    checkpoint_*/images/ (Ray keeps images inside the last checkpoint)."""
    folders = [i.base_name for i in inner if i.type == pafs.FileType.Directory]
    candidates = [f"{trial_dir}/{IMAGES_DIR}"] if IMAGES_DIR in folders else []
    candidates += [f"{trial_dir}/{c}/{IMAGES_DIR}"
                   for c in sorted((f for f in folders if f.startswith(_CHECKPOINT_PREFIX)), reverse=True)]
    for rel in candidates:
        pngs = [e.base_name for e in _list(fs, storage.join(root, rel)) if e.base_name.lower().endswith(".png")]
        if pngs:
            return {Path(p).stem: f"{rel}/{p}" for p in pngs}
    return {}


# --- objectives -----------------------------------------------------------------------------------
def objectives(study: dict[str, Any], metrics: Sequence[str], n_directions: int | None) -> tuple[Objective, ...]:
    """From study.json (``objectives`` as [{metric, mode}], [[metric, mode]] or {metric: mode},
    or ``metric`` and ``mode``), else the launcher's pair: the default score (or the first
    disentanglement score present) up, the reconstruction loss down."""
    pairs = _objective_pairs(study)
    if pairs:
        return tuple(Objective(m, "minimize" if d.lower().startswith("min") else "maximize") for m, d in pairs)
    score = next((m for m in (DEFAULT_SCORE, *DISENTANGLEMENT_METRICS) if m in metrics), None)
    out = [Objective(score, "maximize")] if score else []
    if RECONSTRUCTION in metrics and (n_directions != 1 or not score):
        out.append(Objective(RECONSTRUCTION, "minimize"))
    return tuple(out)


def _objective_pairs(study: dict[str, Any]) -> list[tuple[str, str]]:
    raw = study.get("objectives")
    if isinstance(raw, dict):
        return [(str(k), str(v)) for k, v in raw.items()]
    if isinstance(raw, list):
        pairs = []
        for item in raw:
            if isinstance(item, dict) and "metric" in item:
                pairs.append((str(item["metric"]), str(item.get("mode", item.get("direction", "max")))))
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                pairs.append((str(item[0]), str(item[1])))
        return pairs
    if study.get("metric") is None:
        return []
    ms = study["metric"] if isinstance(study["metric"], list) else [study["metric"]]
    modes = study.get("mode", ["max"] * len(ms))
    modes = modes if isinstance(modes, list) else [modes]
    return [(str(m), str(d)) for m, d in zip(ms, modes, strict=False)]
