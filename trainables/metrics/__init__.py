"""Disentanglement metrics and unsupervised measures of a VAE (docs/metrics.md).

One module per metric, each with a public `compute_*` that samples from a factor space through a
representation function and a pure `_compute_*` on arrays. `evaluate` runs them all; import it
from its module (the package attribute `evaluate` is that module, which is also the CLI):

    from trainables.metrics.evaluate import evaluate
    metrics = evaluate(model, dataset, preset="fast", seed=0)   # flat dict of floats
"""

from .beta_vae import compute_beta_vae
from .dci import compute_dci
from .explicitness import compute_explicitness
from .factor_vae import compute_factor_vae
from .mig import compute_mig
from .modularity import compute_modularity
from .represent import Encoder
from .samples import compute_samples
from .sap import compute_sap
from .unsupervised import compute_unsupervised

__all__ = [
    "Encoder", "compute_beta_vae", "compute_dci", "compute_explicitness", "compute_factor_vae", "compute_mig",
    "compute_modularity", "compute_samples", "compute_sap", "compute_unsupervised",
]
