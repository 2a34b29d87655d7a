"""The vocabulary of vae-study: every name that crosses a layer, defined once and imported.

Data, model, objectives, trainer, trainable, study and analysis all speak about the same
things -- variants, data sets, metrics and their directions, trial outcomes, trial settings,
image kinds, the files of an experiment folder. Each is spelled here and nowhere else, so a
change is one edit and a reader finds the meaning next to the name. This module imports
nothing heavier than the standard library: the launcher and the analysis read it without torch.

    from trainables.vocabulary import METRICS, VARIANT_NAMES, Outcome, STUDY_FILE
    METRICS["mig"].direction    # "max"
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

# --- variants --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    name: str  # as in configurations, folders and tables
    label: str  # as in charts and tables for people
    decomposed: bool  # the KL term replaced by the TC decomposition (Chen et al. 2018)
    adversarial: bool  # encoder and decoder play Soft-Intro-VAE's game (Daniel & Tamar 2021)


# In the report's order (beta-VAE, beta-TCVAE, Soft-Intro-VAE, Soft-Intro-TCVAE).
VARIANTS: tuple[Variant, ...] = (
    Variant("beta_vae", "beta-VAE", decomposed=False, adversarial=False),
    Variant("beta_tcvae", "beta-TCVAE", decomposed=True, adversarial=False),
    Variant("sintro", "Soft-Intro-VAE", decomposed=False, adversarial=True),
    Variant("sintro_tc", "Soft-Intro-TCVAE", decomposed=True, adversarial=True),
)
VARIANT_NAMES: tuple[str, ...] = tuple(v.name for v in VARIANTS)
_BY_NAME = {v.name: v for v in VARIANTS}


def variant(name: str) -> Variant:
    """The variant called `name`; a ValueError lists the valid names otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"variant {name!r} is unknown: use one of {', '.join(VARIANT_NAMES)}") from None


def variant_label(name: object) -> str:
    """The label of a variant name; anything else as text ("(no variant)" for an empty value)."""
    if name is None or (isinstance(name, float) and name != name):
        return "(no variant)"
    return _BY_NAME[name].label if name in _BY_NAME else str(name)


# --- data, models, losses --------------------------------------------------------------------------
DATASETS = ("dsprites", "dsprites_small", "ukiyoe")
DATASETS_WITH_FACTORS = ("dsprites", "dsprites_small")  # ground-truth factors: the disentanglement metrics apply
ARCHS = ("standard", "residual", "residual_report")  # trainables.models
LIKELIHOODS = ("bernoulli", "gaussian")  # dSprites, Ukiyo-e
TC_ESTIMATORS = ("mss", "mws", "mss_report")  # trainables.objectives.tc_decomposition
LOSS_FORMS = ("decomposed", "report")  # trainables.objectives.weighted_regulariser
REC_REDUCTIONS = ("sum", "mean")  # the report's reconstruction term per image or per pixel
PRECISIONS = ("auto", "fp32", "bf16")  # TrainConfig.precision; "auto" resolves to one of the other two


# --- metrics -----------------------------------------------------------------------------------------
class Family(StrEnum):
    DISENTANGLEMENT = "disentanglement"  # needs ground-truth factors
    UNSUPERVISED = "unsupervised"  # from codes and reconstructions alone
    SAMPLES = "samples"  # decodes of random latents
    LOSS = "loss"  # training-epoch means of the trainer's loss terms
    THROUGHPUT = "throughput"


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    family: Family
    direction: str | None  # "max", "min", or None: a diagnostic with no better side
    lower: float | None = None  # bounds of the value (None: unbounded on that side)
    upper: float | None = None
    unit: str = ""

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "max"


_D, _U, _S, _L, _T = Family.DISENTANGLEMENT, Family.UNSUPERVISED, Family.SAMPLES, Family.LOSS, Family.THROUGHPUT
_METRIC_LIST = (
    Metric("beta_vae", "beta-VAE score", _D, "max", 0.0, 1.0),
    Metric("factor_vae", "FactorVAE score", _D, "max", 0.0, 1.0),
    Metric("mig", "MIG", _D, "max", 0.0, 1.0),
    Metric("modularity", "Modularity", _D, "max", 0.0, 1.0),
    Metric("explicitness", "Explicitness", _D, "max", 0.0, 1.0),
    Metric("dci_disentanglement", "DCI disentanglement", _D, "max", 0.0, 1.0),
    Metric("dci_completeness", "DCI completeness", _D, "max", 0.0, 1.0),
    Metric("dci_informativeness", "DCI informativeness", _D, "max", 0.0, 1.0),
    Metric("sap", "SAP", _D, "max", 0.0, 1.0),
    Metric("mse", "MSE per pixel", _U, "min", 0.0, 1.0),
    Metric("psnr", "PSNR", _U, "max", 0.0, None, "dB"),
    # "max": more latents in use, less posterior collapse; `--score active_units` optimises it
    Metric("active_units", "active latents", _U, "max", 0.0, None),
    Metric("kl_total", "KL of the codes", _U, None, 0.0, None, "nats"),
    Metric("gaussian_tc", "Gaussian TC of the means", _U, "min", 0.0, None, "nats"),
    Metric("samples_std1_with_output", "decodes with output, std 1", _S, None, 0.0, 1.0),
    Metric("samples_std1_mean_pixel", "mean pixel of decodes, std 1", _S, None, 0.0, 1.0),
    Metric("samples_std3_with_output", "decodes with output, std 3", _S, None, 0.0, 1.0),
    Metric("samples_std3_mean_pixel", "mean pixel of decodes, std 3", _S, None, 0.0, 1.0),
    Metric("loss", "loss", _L, "min"),
    Metric("loss_encoder", "encoder loss", _L, "min"),
    Metric("loss_decoder", "decoder loss", _L, "min"),
    Metric("rec_loss", "reconstruction loss", _L, "min", 0.0, None, "nats/image"),
    Metric("kl", "KL", _L, None, 0.0, None, "nats"),
    Metric("mi", "index-code MI", _L, None, None, None, "nats"),
    Metric("tc", "total correlation", _L, None, None, None, "nats"),
    Metric("dwkl", "dimension-wise KL", _L, None, None, None, "nats"),
    Metric("exp_elbo_rec", "exp ELBO, reconstructions", _L, None, 0.0, None),
    Metric("exp_elbo_fake", "exp ELBO, prior samples", _L, None, 0.0, None),
    Metric("kl_fake", "KL of prior samples", _L, None, 0.0, None, "nats"),
    Metric("kl_fake_minus_real", "KL fake - real", _L, None, None, None, "nats"),
    Metric("epoch_time_s", "epoch time", _T, None, 0.0, None, "s"),
    Metric("images_per_s", "images per second", _T, None, 0.0, None, "1/s"),
)
METRICS: dict[str, Metric] = {m.name: m for m in _METRIC_LIST}


def metrics_of(family: Family) -> tuple[str, ...]:
    """The metric names of one family, in table order."""
    return tuple(m.name for m in _METRIC_LIST if m.family == family)


DISENTANGLEMENT_METRICS = metrics_of(Family.DISENTANGLEMENT)
UNSUPERVISED_METRICS = metrics_of(Family.UNSUPERVISED)
SAMPLE_METRICS = metrics_of(Family.SAMPLES)
LOSS_TERMS = metrics_of(Family.LOSS)
SAMPLE_STDS = (1, 3)  # the report's figure 3c: random latents at small and large standard deviation
SAMPLE_MEASURES = ("with_output", "mean_pixel")  # per std: the share of decodes with output, their mean pixel
IMAGE_OUTPUT_LEVEL = 0.5  # a decode "has output" when a pixel reaches this (dSprites: black background)

_KL_DIM = re.compile(r"^kl_dim_(\d+)$")  # the per-latent KL of the codes: kl_dim_00, kl_dim_01, ...


def kl_dim_key(latent: int, latent_dim: int) -> str:
    """The key of latent `latent`'s KL, zero-padded so the keys sort in latent order."""
    return f"kl_dim_{latent:0{max(2, len(str(latent_dim - 1)))}d}"


def kl_dim_latent(key: str) -> int | None:
    """The latent index of a kl_dim key, None for any other key."""
    match = _KL_DIM.match(key)
    return int(match.group(1)) if match else None


def sample_key(std: float, measure: str) -> str:
    """The key of a decoded-sample measure: sample_key(1, "with_output") == "samples_std1_with_output"."""
    return f"samples_std{std:g}_{measure}"


def metric_keys(*, has_factors: bool, latent_dim: int) -> list[str]:
    """Every key trainables.metrics.evaluate reports for a model with `latent_dim` latents."""
    return [*(DISENTANGLEMENT_METRICS if has_factors else ()), *UNSUPERVISED_METRICS, *SAMPLE_METRICS,
            *(kl_dim_key(l, latent_dim) for l in range(latent_dim))]


def direction(metric: str) -> str:
    """"max" or "min" for a metric that can be an objective; a ValueError otherwise."""
    m = METRICS.get(metric)
    if m is None or m.direction is None:
        raise ValueError(f"{metric!r} cannot be an objective: use one of "
                         f"{', '.join(k for k, v in METRICS.items() if v.direction)}")
    return m.direction


# The objectives of a study: one disentanglement score (up) and the reconstruction loss (down).
DEFAULT_SCORE = "mig"  # Chen et al. 2018: no classifier noise, and it punishes a factor split over latents
DEFAULT_SCORE_NO_FACTORS = "gaussian_tc"  # without factors (Ukiyo-e): the closest unsupervised proxy
RECONSTRUCTION = "rec_loss"
# The other scores a study can optimise (the launcher's --score), beside DISENTANGLEMENT_METRICS.
UNSUPERVISED_SCORES = (DEFAULT_SCORE_NO_FACTORS, "active_units")  # need no ground-truth factors
RECONSTRUCTION_SCORES = (RECONSTRUCTION, "mse", "psnr")  # alone only: in a pair rec_loss is the second objective


# --- trials ------------------------------------------------------------------------------------------
class Outcome(StrEnum):
    """How a trial stands, in every record: Ray's result, trials.parquet, the report."""

    PENDING = "pending"  # not started
    RUNNING = "running"  # reporting, not finished
    COMPLETED = "completed"  # trained all its epochs
    STOPPED = "stopped"  # ended early by a scheduler (a rung it did not pass): Optuna PRUNED, not on the front
    DIVERGED = "diverged"  # a NaN or Inf loss
    ERROR = "error"  # an exception, or its node was lost without a retry left
    INTERRUPTED = "interrupted"  # its study stopped before it ended (Ctrl-C, --pending-timeout): --resume continues it
    UNREADABLE = "unreadable"  # its result file is damaged


FAILED_OUTCOMES = (Outcome.DIVERGED.value, Outcome.ERROR.value)
# The keys of a trainable's report that say where training stands, not what it measured.
REPORT_KEYS = ("epoch", "metrics_epoch", "outcome", "error", "diverged_epoch")
SCORED_OUTCOMES = (Outcome.COMPLETED.value, Outcome.STOPPED.value)  # have final metric values
# Ranked on a Pareto front: trained every epoch. A stopped trial's values are of a shorter
# training and of the `fast` metrics, not comparable with a finished trial's (docs/study.md).
RANKED_OUTCOMES = (Outcome.COMPLETED.value,)
ENDED_OUTCOMES = (*SCORED_OUTCOMES, *FAILED_OUTCOMES)  # a trial that will not run again by itself
# The error of a trial whose worker died before it could report (a lost node, a killed process):
# Ray ends it with an actor error and no result of its own says why.
NODE_LOST = "node lost"


def retries(num_failures: float | None, ray_status: str | None) -> int | None:
    """Times Ray ran a trial again after a failure (FailureConfig.max_failures): Ray's count of
    failures, less the last one of a trial that ended in ERROR, which was not retried. None when
    Ray's count is unknown."""
    if not isinstance(num_failures, (int, float)) or not math.isfinite(num_failures):
        return None
    return max(0, int(num_failures) - (1 if ray_status == "ERROR" else 0))


def trial_outcome(reported: str | None, ray_status: str | None, *, errored: bool = False,
                  driver_running: bool = True) -> Outcome:
    """How a trial stands: the one rule behind study.json, Optuna's user attributes and
    trials.parquet. `reported`: the outcome of its last result (None: no result); `ray_status`:
    Ray Tune's status; `errored`: Ray ended it with an error; `driver_running`: a launch still
    runs the study (else nothing is `running`: unfinished trials are `interrupted`)."""
    if reported in (Outcome.DIVERGED, Outcome.ERROR, Outcome.COMPLETED):
        return Outcome(reported)
    if errored or ray_status == "ERROR":
        return Outcome.ERROR  # it died without reporting why: NODE_LOST
    if ray_status == "TERMINATED":
        return Outcome.STOPPED  # ended by a scheduler before its last epoch
    if reported is None and ray_status in (None, "PENDING"):
        return Outcome.PENDING
    return Outcome.RUNNING if driver_running else Outcome.INTERRUPTED

# Schedulers of a study (the launcher's --scheduler): every trial to its last epoch, or MO-ASHA
# (study.scheduler), which stops trials at rungs. A stopped trial is told to Optuna as PRUNED
# with these user attributes: the epoch it stopped at, and its objective values there.
SCHEDULERS = ("fifo", "asha")
STOPPED_AT_EPOCH = "stopped_at_epoch"
VALUES_AT_STOP = "values_at_stop"

CONFIG_GROUP = "config_group"  # trial key: the Optuna number of the first seed of its configuration
OPTUNA_NUMBER = "optuna_number"  # trial key: the trial's own number in the Optuna study
# Optuna user attributes of a trial, set before it is told (Optuna never changes a finished trial).
OUTCOME_ATTR = "outcome"  # an Outcome value
ERROR_ATTR = "error"  # the first line of the trial's error, or NODE_LOST
NODE_ATTR = "node_id"  # the Ray node of its last result
RETRY_OF = "retry_of"  # a COMPLETE trial that supersedes FAIL trial n after --retry-failed re-ran it
REQUEUED_FROM = "requeued_from"  # a queued copy of trial n, asked by a killed driver and never started
# Settings of a trial that are not TrainConfig fields, with their defaults.
TRIAL_KEYS: dict[str, object] = {
    "metrics_every": 1,  # the fast metrics every k epochs (and always after epoch 1)
    "metrics_at": [],  # and at these epochs: the scheduler's rungs, where trials are compared
    "final_metrics": "full",  # evaluate() preset after the last epoch
    "train_images": 0,  # 0: all images; n: a fixed random subset of n images
    "objectives": [["mig", "max"], ["rec_loss", "min"]],  # [metric, "max" | "min"], for the sentinels
    CONFIG_GROUP: None,  # the Optuna trial number of the first seed of this configuration
    OPTUNA_NUMBER: None,  # this trial's number in the Optuna study
}
METRIC_PRESETS = ("fast", "full")  # trainables.metrics.evaluate.PRESETS

# Where and how a trial ran, reported with every result ("precision": "fp32" or "bf16", as resolved there).
PLACEMENT_KEYS = ("node_ip", "node_id", "hostname", "gpu_share", "precision")
NODE_LABEL = "node"  # column / study.json key of node_label()


def node_label(node_id: object, host: object = None) -> str | None:
    """A short name of a Ray node for tables: host and the first 6 hex digits of its id
    ("vm:5853a2"), since several nodes may share one host; None without an id."""
    if not isinstance(node_id, str) or not node_id:
        return None
    return f"{host}:{node_id[:6]}" if isinstance(host, str) and host else node_id[:8]

# --- images ------------------------------------------------------------------------------------------
# The final image grids of a trial (Trainer.save_images), in display order, with captions.
IMAGE_KINDS: dict[str, str] = {
    "recon": "reconstructions (top: input, bottom: reconstruction of its mean code)",
    "traversals": "latent traversals, one row per latent in order of its KL",
    "samples_std1": "decodes of z ~ N(0, 1)",
    "samples_std3": "decodes of z ~ N(0, 3^2)",
}
TRAVERSALS_INFO = "traversals.json"  # next to the images: each row's latent, its KL and the z values

# --- studies -----------------------------------------------------------------------------------------
class StudyStatus(StrEnum):
    """How a study stands, in its study.json."""

    RUNNING = "running"  # a launch is running it (or was killed while it ran)
    COMPLETED = "completed"  # Ray ended every trial
    INTERRUPTED = "interrupted"  # stopped before the end: --resume continues it
    FAILED = "failed"  # the launcher itself raised


# study.json's per-trial record (the launcher's reconciled view, docs/reliability.md): under
# RECORD_TRIALS, one mapping per Ray trial with these keys.
RECORD_TRIALS = "trials"
RECORD_JOURNAL = "journal"  # the Optuna journal's path on the launch's machine; the lock is next to it
RECORD_RUNS = "runs"  # one mapping per launch: argv, started_at, RUN_LOCK_TOKEN
RUN_LOCK_TOKEN = "lock_token"  # the token of the launch's study.lock: which lock file is this launch's
RAY_ERROR = "ray_error"  # the first line of Ray's own error (error.txt) of a failed trial
RECORD_TRIAL_KEYS = ("trial_id", "trial_dir", OPTUNA_NUMBER, "optuna_state", RETRY_OF, OUTCOME_ATTR, ERROR_ATTR,
                     "ray_status", RAY_ERROR, NODE_ATTR, NODE_LABEL, "retries")

# --- the experiment folder ---------------------------------------------------------------------------
STUDY_FILE = "study.json"  # settings, versions, status and counts of a study
JOURNAL_FILE = "optuna.journal"  # the Optuna study (JournalFileBackend)
LOCK_FILE = "study.lock"  # next to the journal while a launch runs the study (study.lock: pid, host, start)
TRIALS_FILE = "trials.parquet"  # one row per trial
HISTORY_FILE = "history.parquet"  # one row per trial and epoch
REPORT_FILE = "report.html"
PAPER_DIR = "paper"
RAY_LOG_FILE = "ray.log"
# Inside a trial folder (Ray writes params.json, result.json and error.txt).
PARAMS_FILE = "params.json"
RESULT_FILE = "result.json"
ERROR_FILE = "error.txt"
IMAGES_DIR = "images"
CHECKPOINT_FILE = "trainer.pt"
TRIAL_STATE_FILE = "trial_state.json"  # the last metrics, so a resumed trial keeps reporting every key
DIVERGED_FILE = "diverged.json"  # marks a diverged checkpoint: a retry ends at once
