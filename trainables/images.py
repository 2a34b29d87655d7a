"""The image grids of a trained VAE: inputs over reconstructions, decodes of random codes and
latent traversals, as PNG files (vocabulary.IMAGE_KINDS) with traversals.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from trainables import vocabulary as vocab
from trainables.models import VAE
from trainables.objectives import as_image, kl_per_latent
from trainables.storage import atomic_path, write_atomic


@torch.no_grad()
def save_images(model: VAE, images: torch.Tensor, out_dir: str | Path, *, pixel_max: float, likelihood: str,
                seed: int, n: int = 8, traversal_steps: int = 9, kl_images: int = 512) -> list[Path]:
    """PNG grids of `model` on `images` (uint8, on the model's device; divided by `pixel_max`):
    inputs over reconstructions, decodes of z ~ N(0, s^2) for s = 1 and 3 (the report's figure
    3c), and a traversal of every latent from -2.5 to 2.5 around the first input's code, one row
    per latent in order of its mean KL over `kl_images` images (the most used latent first).
    traversals.json says, row by row, which latent it is and its KL, and the z values of the
    columns. The images shown are drawn with `seed`."""
    was_training = model.training
    model.eval()
    out_dir = Path(out_dir)
    device, latent_dim = images.device, model.latent_dim
    gen = torch.Generator(device="cpu").manual_seed(seed)
    order = torch.randperm(len(images), generator=gen).to(device)
    x = images[order[:n]].float() / pixel_max
    mu, _ = model.encode(x)
    image = lambda z: as_image(model.decode(z), likelihood).clamp(0, 1)  # noqa: E731
    grids = {"recon": torch.stack([x, image(mu)])}
    for std in vocab.SAMPLE_STDS:
        z = torch.randn(2, n, latent_dim, generator=gen).to(device) * std
        grids[f"samples_std{std}"] = image(z.flatten(0, 1)).unflatten(0, (2, n))
    kl = latent_kl(model, images[order[:kl_images]], pixel_max)
    latents = torch.argsort(kl, descending=True)
    values = torch.linspace(-2.5, 2.5, traversal_steps, device=device)
    z = mu[0].repeat(latent_dim, traversal_steps, 1)  # (L, steps, L): row r moves latent latents[r]
    rows = torch.arange(latent_dim, device=device)
    z[rows, :, latents] = values
    grids["traversals"] = image(z.flatten(0, 1)).unflatten(0, (latent_dim, traversal_steps))
    model.train(was_training)
    paths = [write_grid(g, out_dir / f"{name}.png") for name, g in grids.items()]
    info = {"latents": latents.tolist(), "kl": [round(float(kl[l]), 6) for l in latents],
            "values": [round(float(v), 6) for v in values]}
    paths.append(write_atomic(out_dir / vocab.TRAVERSALS_INFO, json.dumps(info) + "\n"))
    return paths


def latent_kl(model: VAE, images: torch.Tensor, pixel_max: float, batch: int = 256) -> torch.Tensor:
    """Mean KL(q(z_l|x) || N(0, 1)) per latent over `images` (uint8), (L,)."""
    total = torch.zeros(model.latent_dim, device=images.device)
    for chunk in images.split(batch):
        mu, logvar = model.encode(chunk.float() / pixel_max)
        total += kl_per_latent(mu, logvar).sum(0)
    return total / len(images)


def write_grid(images: torch.Tensor, path: Path, pad: int = 2) -> Path:
    """(rows, cols, C, H, W) in [0, 1] -> one PNG, written atomically."""

    rows, cols, c, h, w = images.shape
    canvas = torch.ones(c, rows * (h + pad) + pad, cols * (w + pad) + pad)
    for r in range(rows):
        for col in range(cols):
            top, left = pad + r * (h + pad), pad + col * (w + pad)
            canvas[:, top:top + h, left:left + w] = images[r, col].float().cpu()
    array = (canvas.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(array[..., 0] if c == 1 else array).save(tmp, format="PNG")
    return Path(path)
