"""One training loop for the four variants: beta-VAE, beta-TCVAE, Soft-Intro-VAE, Soft-Intro-TCVAE.

    python -m trainables.trainer --variant sintro_tc --epochs 3 --out runs/one

The variants differ only in two switches: whether the KL term is replaced by the TC
decomposition (Chen et al. 2018), and whether the encoder and decoder play Soft-Intro-VAE's
adversarial game (Daniel & Tamar 2021; the report's equations (3)-(6)). Everything else -- data
on the device, seeding, checkpoints, divergence handling, image grids -- is shared.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainables import objectives as obj
from trainables import vocabulary as vocab
from trainables.cli import OneLineParser, UsageError, check_output_folder, fail
from trainables.data import Dataset, DatasetError, load_dataset
from trainables.device import resolve_device, resolve_precision
from trainables.images import save_images
from trainables.models import VAE
from trainables.storage import atomic_path


@dataclass(frozen=True)
class TrainConfig:
    variant: str = "beta_vae"  # one of vocabulary.VARIANT_NAMES
    dataset: str = "dsprites_small"
    data_root: str | None = None  # dSprites npz file / Ukiyo-e folder; None = rendered dSprites
    arch: str | None = None  # None: "standard" for dSprites, "residual" for Ukiyo-e
    image_size: int | None = None  # None: the data set's native size (64)
    latent_dim: int = 10
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-4  # Adam, encoder and decoder alike (Soft-Intro reference code)
    beta_rec: float = 1.0
    beta_kl: float = 1.0
    beta_neg: float = 256.0  # Soft-Intro only; reference code: 256 for MNIST/CIFAR-like data
    alpha: float = 2.0  # Soft-Intro only; report and reference code
    gamma: float = 1.0  # Soft-Intro only
    gamma_r: float = 1e-8  # Soft-Intro only; weight of re-reconstruction in the decoder loss
    mi_weight: float = 1.0  # TC variants only
    tc_weight: float = 6.0  # TC variants only; Chen et al. 2018 use 6 on dSprites
    dwkl_weight: float = 1.0  # TC variants only
    tc_estimator: str = "mss"  # "mss" (unbiased), "mws" (biased by log N per density), "mss_report" (the report's)
    loss_form: str = "decomposed"  # "decomposed" (beta * (MI + b TC + DWKL)) or "report" (its code's losses)
    rec_reduction: str = "sum"  # "sum" over pixels (nats) or "mean" (one reading of the report's code; "report" only)
    seed: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    precision: str = "auto"  # "auto": bf16 on CUDA and on CPUs with native bf16, else fp32; "fp32"; "bf16"
    channels_last: bool = True  # NHWC layout on CUDA, and on a CPU in bf16 (faster convolutions); not in fp32 on CPU
    compile: bool = False  # torch.compile the model (CUDA)
    check_every: int = 50  # steps between finiteness checks (each one syncs with the host)

    def __post_init__(self) -> None:
        checks = [
            (self.variant in vocab.VARIANT_NAMES,
             f"variant {self.variant!r} is unknown: use one of {', '.join(vocab.VARIANT_NAMES)}"),
            (self.tc_estimator in vocab.TC_ESTIMATORS,
             f"tc_estimator {self.tc_estimator!r} is unknown: use one of {', '.join(vocab.TC_ESTIMATORS)}"),
            (self.loss_form in vocab.LOSS_FORMS,
             f"loss_form {self.loss_form!r} is unknown: use one of {', '.join(vocab.LOSS_FORMS)}"),
            (self.rec_reduction in vocab.REC_REDUCTIONS,
             f"rec_reduction {self.rec_reduction!r} is unknown: use one of {', '.join(vocab.REC_REDUCTIONS)}"),
            (self.arch is None or self.arch in vocab.ARCHS,
             f"arch {self.arch!r} is unknown: use one of {', '.join(vocab.ARCHS)}"),
            (self.dataset in vocab.DATASETS,
             f"dataset {self.dataset!r} is unknown: use one of {', '.join(vocab.DATASETS)}"),
            (self.precision in vocab.PRECISIONS,
             f"precision {self.precision!r} is unknown: use one of {', '.join(vocab.PRECISIONS)}"),
            (self.rec_reduction == "sum" or self.loss_form == "report",
             "rec_reduction='mean' reads the report's code: it needs loss_form='report'"),
            (self.latent_dim >= 1, f"latent_dim must be >= 1, got {self.latent_dim}"),
            (self.epochs >= 0, f"epochs must be >= 0, got {self.epochs}"),
            (self.batch_size >= 2, f"batch_size must be >= 2 (the TC estimators need pairs), got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.alpha > 0 or not self.adversarial, f"alpha must be > 0, got {self.alpha}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def decomposed(self) -> bool:
        return vocab.variant(self.variant).decomposed

    @property
    def adversarial(self) -> bool:
        return vocab.variant(self.variant).adversarial

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Build from a dict, rejecting keys that are not fields (a typo would otherwise be ignored)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(f"unknown TrainConfig key(s) {unknown}: valid keys are {sorted(fields)}")
        return cls(**values)


class Diverged(RuntimeError):
    """The loss became NaN or Inf: the run is over (Soft-Intro's exp() terms do this)."""

    def __init__(self, epoch: int, step: int):
        super().__init__(f"training diverged (non-finite loss) at epoch {epoch}, step {step}")
        self.epoch = epoch
        self.step = step


class Trainer:
    """Holds the model, the optimisers and the data on the device; `train_epoch` runs one epoch."""

    def __init__(self, config: TrainConfig, dataset: Dataset | None = None):
        self.config = config
        self.device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        self.dataset = dataset or load_dataset(config.dataset, root=config.data_root, image_size=config.image_size)
        n, c, h, w = self.dataset.images.shape
        if n < config.batch_size:
            raise ValueError(f"batch_size {config.batch_size} exceeds the data set's {n} images: lower --batch-size")
        arch = config.arch or ("standard" if self.dataset.factors is not None else "residual")
        self.precision = resolve_precision(config.precision, self.device)  # "fp32" or "bf16", as it runs
        self.use_amp = self.precision == "bf16"
        # NHWC speeds up convolutions on a GPU, and oneDNN's bf16 ones on a CPU; the CPU's fp32
        # path keeps the default layout, so it computes exactly what it always did.
        nhwc = config.channels_last and (self.device.type == "cuda" or self.use_amp)
        self.memory_format = torch.channels_last if nhwc else torch.contiguous_format
        self.model = VAE(arch=arch, channels=c, image_size=h, latent_dim=config.latent_dim)
        self.model.to(self.device, memory_format=self.memory_format)
        if config.compile:  # in place, so state_dict keys and the encoder/decoder split stay as they are
            self.model.encoder.compile()
            self.model.decoder.compile()
        # Two optimisers for every variant: Adam is per-parameter, so for the non-adversarial
        # variants stepping both is the same as one optimiser over all parameters.
        self.opt_e = torch.optim.Adam(self.model.encoder.parameters(), lr=config.lr)
        self.opt_d = torch.optim.Adam(self.model.decoder.parameters(), lr=config.lr)
        # The whole data set lives on the device as uint8; batches are cast there.
        self.images = torch.from_numpy(np.ascontiguousarray(self.dataset.images)).to(self.device)
        self.order_rng = torch.Generator().manual_seed(config.seed)  # data order, separate from noise
        self.scale = 1.0 / (c * h * w)  # Soft-Intro's s = 1/(C*H*W)
        # The report's code also scales the beta-VAE losses by s, and may average its real-image
        # reconstruction over pixels (docs/objectives.md, "The report's code").
        self.loss_scale = self.scale if config.loss_form == "report" else 1.0
        self.rec_unit = self.scale if config.rec_reduction == "mean" else 1.0
        # Soft-Intro: the decoder step reuses the encoder step's decoder passes unless BatchNorm
        # (running statistics) makes each pass count (_encoder_step)
        self.reuse_decoder_passes = not self.model.batch_dependent
        self.epoch = 0
        self.step = 0

    # --- the objectives -------------------------------------------------------------------------
    def _autocast(self, x: torch.Tensor):
        """bf16 autocast of the model's layers for float32 inputs. The losses are computed outside
        it, in the input's precision (Soft-Intro's exp() terms stay float32), and a float64 model
        (the port tests) runs as it is."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp and x.dtype == torch.float32)

    def _terms(self, z, mu, logvar) -> dict[str, torch.Tensor]:
        """KL, and for the TC variants the estimated MI, TC and dimension-wise KL; each (B,)."""
        cfg = self.config
        return obj.regulariser_terms(z, mu, logvar, decomposed=cfg.decomposed, dataset_size=len(self.images),
                                     estimator=cfg.tc_estimator)

    def _weighted(self, terms: dict[str, torch.Tensor], beta: float) -> torch.Tensor:
        """W(beta): one ELBO's regulariser with its weight, in the configured loss form; (B,)."""
        cfg = self.config
        return obj.weighted_regulariser(terms, beta, form=cfg.loss_form, mi_weight=cfg.mi_weight,
                                        tc_weight=cfg.tc_weight, dwkl_weight=cfg.dwkl_weight)

    def _rec(self, x, out) -> torch.Tensor:
        """R(x, out) per image, (B,), in nats (summed over pixels)."""
        return obj.reconstruction_loss(x, out, self.dataset.likelihood)

    def _sample(self, mu, logvar):
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def _encode(self, x):
        """Encoder mean, log-variance and a reparameterised sample, in float32 for the losses."""
        with self._autocast(x):
            mu, logvar = self.model.encode(x)
        mu, logvar = mu.to(x.dtype), logvar.to(x.dtype)
        return mu, logvar, self._sample(mu, logvar)

    def _decode(self, z):
        with self._autocast(z):
            return self.model.decode(z).to(z.dtype)

    def _as_image(self, out):
        """Decoder output -> image space, to feed generated images back to the encoder."""
        return obj.as_image(out, self.dataset.likelihood)

    def _encode_each(self, batches: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(mu, logvar, z) of each batch. A model with batch-dependent layers (BatchNorm) sees each
        batch in a pass of its own, in order, as the reference code runs them: one pass over their
        concatenation would normalise reconstructions and prior samples by pooled statistics.
        Without such layers the single pass is the same computation, and faster. Either way the
        noise is drawn batch by batch, so both paths use the same random numbers."""
        if self.model.batch_dependent:
            return [self._encode(x) for x in batches]
        with self._autocast(batches[0]):
            mu, logvar = self.model.encode(torch.cat(batches))
        sizes, dtype = [len(x) for x in batches], batches[0].dtype
        pairs = zip(mu.to(dtype).split(sizes), logvar.to(dtype).split(sizes), strict=True)
        return [(m, lv, self._sample(m, lv)) for m, lv in pairs]

    def _decode_each(self, codes: list[torch.Tensor]) -> list[torch.Tensor]:
        """The decoder output of each batch of codes; separate passes as in `_encode_each`."""
        if self.model.batch_dependent:
            return [self._decode(z) for z in codes]
        return list(self._decode(torch.cat(codes)).split([len(z) for z in codes]))

    def _generated_terms(self, generated: list[torch.Tensor], beta: float, *, detach_codes: bool):
        """Encode each batch of generated images [rec, fake], sample and decode again. Returns
        R(g, D(E(g))) with the image g as a constant target, W(beta) of their posteriors (the TC
        estimated within each batch: they are two different distributions) and their KL; each
        (2B,) ordered [rec..., fake...]. `detach_codes` cuts the re-decoding off the encoder."""
        posteriors = self._encode_each(generated)
        terms = [self._terms(z, mu, logvar) for mu, logvar, z in posteriors]
        outs = self._decode_each([z.detach() if detach_codes else z for _, _, z in posteriors])
        rec = torch.cat([self._rec(g.detach(), out) for g, out in zip(generated, outs, strict=True)])
        reg = torch.cat([self._weighted(t, beta) for t in terms])
        return rec, reg, torch.cat([t["kl"] for t in terms])

    def _beta_step(self, x) -> dict[str, torch.Tensor]:
        cfg = self.config
        mu, logvar, z = self._encode(x)
        rec = self._rec(x, self._decode(z))
        terms = self._terms(z, mu, logvar)
        loss = obj.beta_vae_loss(rec * self.rec_unit, self._weighted(terms, cfg.beta_kl), beta_rec=cfg.beta_rec,
                                 scale=self.loss_scale).mean()
        self.opt_e.zero_grad(set_to_none=True)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_e.step()
        self.opt_d.step()
        return {"loss": loss, "rec_loss": rec.mean(), **{k: v.mean() for k, v in terms.items()}}

    def _soft_intro_step(self, x) -> dict[str, torch.Tensor]:
        """One encoder step then one decoder step (report eqs. (3)/(4); (5)/(6) with the TC
        regulariser), with the reference code's passes in its order (it matters for BatchNorm)."""
        b = x.shape[0]
        z_p = torch.randn(b, self.config.latent_dim, device=x.device, dtype=x.dtype)  # serves both steps
        enc = self._encoder_step(x, z_p)
        loss_d, kl_gen = self._decoder_step(x, z_p, enc)
        loss_e, terms, exp_elbo = enc["loss"].detach(), enc["terms"], enc["exp_elbo"]
        kl_fake = kl_gen[b:].detach().mean()
        return {
            "loss": loss_e + loss_d.detach(),
            "loss_encoder": loss_e,
            "loss_decoder": loss_d.detach(),
            "rec_loss": enc["rec_real"].detach().mean(),
            **{k: v.detach().mean() for k, v in terms.items()},
            "exp_elbo_rec": exp_elbo[:b].mean(),
            "exp_elbo_fake": exp_elbo[b:].mean(),
            "kl_fake": kl_fake,
            "kl_fake_minus_real": kl_fake - terms["kl"].detach().mean(),
        }

    def _encoder_step(self, x, z_p) -> dict:
        """The encoder's update; the decoder is a fixed function (gradients pass through it, no
        update). Its passes over the prior codes z_p and the real codes z are the decoder step's
        as well (same codes, same decoder weights): without BatchNorm they are made once, with the
        decoder's graph, and handed on -- the same numbers, two decoder passes fewer. With
        BatchNorm every pass also moves the running statistics, so each step makes its own, as
        the reference code does."""
        cfg, reuse = self.config, self.reuse_decoder_passes
        self.model.decoder.requires_grad_(reuse)
        fake = self._decode(z_p)
        mu, logvar, z = self._encode(x)
        out = self._decode(z)
        rec_real = self._rec(x, out)
        terms = self._terms(z, mu, logvar)
        generated = [self._as_image(out).detach(), self._as_image(fake).detach()]
        rec_gen, reg_gen, _ = self._generated_terms(generated, cfg.beta_neg, detach_codes=False)
        loss_e, exp_elbo = obj.soft_intro_encoder_loss(
            rec_real * self.rec_unit, self._weighted(terms, cfg.beta_kl), rec_gen, reg_gen,
            scale=self.scale, alpha=cfg.alpha, beta_rec=cfg.beta_rec)
        loss_e = loss_e.mean()
        self.opt_e.zero_grad(set_to_none=True)
        # with the decoder's graph kept for the decoder step, only the encoder's gradients here
        loss_e.backward(inputs=list(self.model.encoder.parameters()) if reuse else None, retain_graph=reuse)
        self.opt_e.step()
        self.model.decoder.requires_grad_(True)
        return {"loss": loss_e, "exp_elbo": exp_elbo, "terms": terms, "rec_real": rec_real, "z": z,
                "decoded": (fake, out) if reuse else None}

    def _decoder_step(self, x, z_p, enc: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder's update; the encoder is frozen and its codes are constants. Returns the
        decoder loss and the KL of the generated images' posteriors, (2B,) [rec..., fake...]."""
        cfg = self.config
        self.model.encoder.requires_grad_(False)
        fake, out = enc["decoded"] or (self._decode(z_p), self._decode(enc["z"].detach()))
        rec_real_d = self._rec(x, out)
        generated = [self._as_image(out), self._as_image(fake)]
        rec_regen, reg_gen_d, kl_gen = self._generated_terms(generated, cfg.beta_kl, detach_codes=True)
        loss_d = obj.soft_intro_decoder_loss(
            rec_real_d * self.rec_unit, reg_gen_d, rec_regen * self.rec_unit,
            scale=self.scale, gamma=cfg.gamma, gamma_r=cfg.gamma_r, beta_rec=cfg.beta_rec).mean()
        self.opt_d.zero_grad(set_to_none=True)
        # a reused pass of the real codes leads back into the encoder: only the decoder's gradients
        loss_d.backward(inputs=list(self.model.decoder.parameters()) if enc["decoded"] else None)
        self.opt_d.step()
        self.model.encoder.requires_grad_(True)
        return loss_d, kl_gen

    # --- the loop -------------------------------------------------------------------------------
    def train_epoch(self) -> dict[str, float]:
        """Train one epoch; return per-epoch means of every loss term plus throughput."""
        cfg = self.config
        self.model.train()
        step_fn = self._soft_intro_step if cfg.adversarial else self._beta_step
        order = torch.randperm(len(self.images), generator=self.order_rng).to(self.device)
        n_batches = len(self.images) // cfg.batch_size  # drop the ragged last batch: TC needs full ones
        sums: dict[str, torch.Tensor] = {}
        first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        start = time.perf_counter()
        for i in range(n_batches):
            x = self.images[order[i * cfg.batch_size:(i + 1) * cfg.batch_size]].float() / self.dataset.pixel_max
            x = x.contiguous(memory_format=self.memory_format)
            terms = step_fn(x)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.detach()
            # Record the first non-finite step on the device; look at it only every check_every steps.
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(terms["loss"]), self.step, first_bad)
            self.step += 1
            if (i + 1) % cfg.check_every == 0 or i + 1 == n_batches:
                self._raise_if_diverged(first_bad)
        elapsed = time.perf_counter() - start
        self.epoch += 1
        result = {k: float(v) / n_batches for k, v in sums.items()}
        result.update(epoch=self.epoch, epoch_time_s=elapsed, images_per_s=n_batches * cfg.batch_size / elapsed)
        return result

    def _raise_if_diverged(self, first_bad: torch.Tensor) -> None:
        bad = int(first_bad)
        if bad >= 0:
            raise Diverged(self.epoch + 1, bad)

    def train(self, out_dir: str | Path | None = None, log=print) -> list[dict[str, float]]:
        """Train to `config.epochs`, checkpointing into out_dir after every epoch."""
        history = []
        while self.epoch < self.config.epochs:
            history.append(self.train_epoch())
            log(" ".join(f"{k}={v:.4g}" for k, v in history[-1].items()))
            if out_dir is not None:
                self.save_checkpoint(Path(out_dir) / "trainer.pt")
        if out_dir is not None:
            self.save_images(Path(out_dir) / "images")
        return history

    # --- checkpoints ----------------------------------------------------------------------------
    def save_checkpoint(self, path: str | Path) -> Path:
        """Everything needed to continue bit-for-bit: model, optimisers, RNG streams, counters."""
        state = {
            "config": dataclasses.asdict(self.config),
            "epoch": self.epoch,
            "step": self.step,
            "model": self.model.state_dict(),
            "opt_e": self.opt_e.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "order_rng": self.order_rng.get_state(),
            "versions": {"torch": torch.__version__, "numpy": np.__version__},
        }
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        return Path(path)

    @classmethod
    def from_checkpoint(cls, path: str | Path, dataset: Dataset | None = None, **overrides) -> Trainer:
        """Rebuild a trainer from `save_checkpoint`; `overrides` may change e.g. epochs or device."""
        state = torch.load(path, map_location="cpu", weights_only=False)
        config = {**state["config"], **overrides}
        if "amp" in config:  # a checkpoint from before `precision`: bf16 autocast ran on CUDA only
            on_cuda = resolve_device(config.get("device", "auto")).type == "cuda"
            config.setdefault("precision", "bf16" if config.pop("amp") and on_cuda else "fp32")
        trainer = cls(TrainConfig.from_dict(config), dataset)
        trainer.model.load_state_dict(state["model"])
        trainer.opt_e.load_state_dict(state["opt_e"])
        trainer.opt_d.load_state_dict(state["opt_d"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        trainer.order_rng.set_state(state["order_rng"])
        trainer.epoch, trainer.step = state["epoch"], state["step"]
        return trainer

    def save_images(self, out_dir: str | Path) -> list[Path]:
        """The model's image grids on this trainer's data (trainables.images.save_images)."""
        return save_images(self.model, self.images, out_dir, pixel_max=self.dataset.pixel_max,
                           likelihood=self.dataset.likelihood, seed=self.config.seed)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m trainables.trainer",
                           description="Train one VAE variant (no Ray, no Optuna).")
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        value = getattr(defaults, field.name)
        if isinstance(value, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value)
        else:
            kind = {"data_root": str, "arch": str, "image_size": int}.get(field.name, type(value))
            parser.add_argument(flag, type=kind, default=value)
    parser.add_argument("--out", default="runs/train", help="folder for trainer.pt and images/")
    try:
        args = vars(parser.parse_args(argv))
        out = args.pop("out")
        check_output_folder(out, "--out")
        trainer = Trainer(TrainConfig(**args))
        trainer.train(out)
    except (UsageError, ValueError, DatasetError, OSError) as e:
        return fail(e)
    except Diverged as e:
        print(f"diverged: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}/trainer.pt and {out}/images/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
