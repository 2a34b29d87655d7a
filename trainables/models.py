"""The VAE and its two architectures.

- ``standard``: the 64x64 convolutional model of the disentanglement literature (Burgess et al.
  2018, "Understanding disentangling in beta-VAE", appendix A.1; Locatello et al. 2019,
  disentanglement_lib ``conv_encoder``/``deconv_decoder``): four 4x4 stride-2 convolutions with
  32-32-64-64 channels, FC 256, heads for mu and logvar; the decoder mirrors it with transposed
  convolutions. About 0.77M parameters at L=10 for one channel.
- ``residual``: the Soft-Intro-VAE image model (Daniel & Tamar 2021, reference code
  taldatech/soft-intro-vae-pytorch, ``train_soft_intro_vae.py``): residual blocks with BatchNorm
  and LeakyReLU(0.2), average-pool downsampling, nearest-neighbour upsampling, channels
  64-128-256-512 at 64x64 and one more 512 stage per doubling of the image size. About 17M
  parameters at 64x64.
- ``residual_report``: the report code's version of that model (meffmadd/intro-tc-vae,
  ``models.py``, ``arch="res"``, its default on both data sets): each block normalises the second
  convolution before adding the identity instead of after, the input stem's BatchNorm has eps
  1e-4, and the decoder's first layer is followed by LeakyReLU(0.2) instead of ReLU. Its decoder
  ends in a sigmoid; here the decoder returns the logits (Bernoulli) as for every model, which is
  the same likelihood (docs/objectives.md).

Both map an image (B, C, H, W) to (mu, logvar), each (B, L), and a code (B, L) back to the raw
decoder output (B, C, H, W): Bernoulli logits or the Gaussian mean, as the objective decides.
"""

import torch
from torch import nn

from trainables.vocabulary import ARCHS


# --- standard: Burgess et al. 2018 / disentanglement_lib ------------------------------------------
def _standard(channels: int, image_size: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    if image_size != 64:
        raise ValueError(f"arch='standard' is the 64x64 model; got image_size={image_size}. "
                         "Use image_size=64 or arch='residual'.")

    def down(c_in, c_out):  # 4x4 stride 2, "same" padding: H -> H/2
        return [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]

    def up(c_in, c_out, last=False):  # mirror of `down`: H -> 2H
        return [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)] + ([] if last else [nn.ReLU()])

    encoder = nn.Sequential(
        *down(channels, 32), *down(32, 32), *down(32, 64), *down(64, 64),  # (B, 64, 4, 4)
        nn.Flatten(), nn.Linear(64 * 4 * 4, 256), nn.ReLU(),
        nn.Linear(256, 2 * latent_dim),  # both heads in one layer: [mu, logvar]
    )
    decoder = nn.Sequential(
        nn.Linear(latent_dim, 256), nn.ReLU(), nn.Linear(256, 64 * 4 * 4), nn.ReLU(),
        nn.Unflatten(1, (64, 4, 4)),
        *up(64, 64), *up(64, 32), *up(32, 32), *up(32, channels, last=True),  # (B, C, 64, 64)
    )
    return encoder, decoder


# --- residual: Soft-Intro-VAE (Daniel & Tamar 2021) -----------------------------------------------
class ResidualBlock(nn.Module):
    """conv3x3-BN-LReLU-conv3x3, plus the identity (a 1x1 conv when the width changes), then
    LReLU. ``norm_sum``: BN on the sum, as in the Soft-Intro-VAE reference model; otherwise BN on
    the second convolution before the sum, as in the report's code."""

    def __init__(self, c_in: int, c_out: int, *, norm_sum: bool = True):
        super().__init__()
        self.norm_sum = norm_sum
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        if self.norm_sum:
            return self.act(self.bn2(self.conv2(y) + self.skip(x)))
        return self.act(self.bn2(self.conv2(y)) + self.skip(x))


def _residual_widths(image_size: int) -> list[int]:
    """One stage per halving from image_size down to 4x4: 64, 128, 256, then 512 for the rest
    (32 -> 64-128-256, 64 -> 64-128-256-512, 128 -> 64-128-256-512-512, as in the reference)."""
    stages = (image_size // 4).bit_length() - 1
    if image_size < 16 or image_size != 4 * 2**stages:
        raise ValueError(f"arch='residual' needs image_size = 4 * 2^k >= 16 (16, 32, 64, 128, ...); "
                         f"got image_size={image_size}.")
    return [min(64 * 2**i, 512) for i in range(stages)]


def _residual(channels: int, image_size: int, latent_dim: int, *, report: bool = False) -> tuple[nn.Module, nn.Module]:
    widths = _residual_widths(image_size)

    def block(c_in: int, c_out: int) -> ResidualBlock:
        return ResidualBlock(c_in, c_out, norm_sum=not report)

    stem_norm = nn.BatchNorm2d(widths[0], eps=1e-4 if report else 1e-5)
    enc = [nn.Conv2d(channels, widths[0], 5, padding=2, bias=False), stem_norm, nn.LeakyReLU(0.2), nn.AvgPool2d(2)]
    for c_in, c_out in zip(widths[:-1], widths[1:]):
        enc += [block(c_in, c_out), nn.AvgPool2d(2)]
    top = widths[-1]
    enc += [block(top, top), nn.Flatten(), nn.Linear(top * 4 * 4, 2 * latent_dim)]

    dec = [nn.Linear(latent_dim, top * 4 * 4), nn.LeakyReLU(0.2) if report else nn.ReLU(),
           nn.Unflatten(1, (top, 4, 4))]
    c_in = top
    for c_out in reversed(widths):  # 4x4 -> image_size
        dec += [block(c_in, c_out), nn.Upsample(scale_factor=2, mode="nearest")]
        c_in = c_out
    dec += [block(c_in, c_in), nn.Conv2d(c_in, channels, 5, padding=2)]
    return nn.Sequential(*enc), nn.Sequential(*dec)


def _residual_report(channels: int, image_size: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    return _residual(channels, image_size, latent_dim, report=True)


_BUILDERS = {"standard": _standard, "residual": _residual, "residual_report": _residual_report}


# --- the model ------------------------------------------------------------------------------------
class VAE(nn.Module):
    """Gaussian-posterior VAE with a separate encoder and decoder (Soft-Intro trains them with
    separate optimisers).

    encoder: x (B, C, H, W) -> (B, 2L) = [mu, logvar]; decoder: z (B, L) -> (B, C, H, W) raw
    output (Bernoulli logits or Gaussian mean).
    """

    def __init__(self, *, arch: str, channels: int, image_size: int, latent_dim: int):
        super().__init__()
        if arch not in _BUILDERS:
            raise ValueError(f"unknown arch {arch!r}; valid names: {', '.join(ARCHS)}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3; got {channels}")
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1; got {latent_dim}")
        self.arch, self.channels, self.image_size, self.latent_dim = arch, channels, image_size, latent_dim
        self.encoder, self.decoder = _BUILDERS[arch](channels, image_size, latent_dim)
        # In training mode BatchNorm normalises each image by the statistics of its batch: then
        # batches of different distributions must not be pooled into one pass (trainer).
        self.batch_dependent = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.modules())

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> (mu, logvar), each (B, L)."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, C, H, W) raw decoder output."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (out, mu, logvar, z) with z = mu + exp(logvar/2) * eps, eps ~ N(0, I)."""
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # (B, L)
        return self.decode(z), mu, logvar, z

    def flops_per_image(self) -> int:
        """Forward FLOPs of one encoder and one decoder pass for one image: 2 x the
        multiply-accumulates of the Linear, Conv2d and ConvTranspose2d layers, counted from the
        layer shapes seen in a forward pass (norms, activations, pooling and bias adds excluded)."""
        macs = 0

        def count(module, inputs, output):
            nonlocal macs
            if isinstance(module, nn.Linear):
                macs += module.in_features * module.out_features
            elif isinstance(module, nn.Conv2d):  # each output element: C_in/groups * kh * kw MACs
                k = module.kernel_size[0] * module.kernel_size[1]
                macs += output[0].numel() * (module.in_channels // module.groups) * k
            elif isinstance(module, nn.ConvTranspose2d):  # each input element scatters to C_out*k
                k = module.kernel_size[0] * module.kernel_size[1]
                macs += inputs[0][0].numel() * (module.out_channels // module.groups) * k

        layers = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
        hooks = [m.register_forward_hook(count) for m in self.modules() if isinstance(m, layers)]
        was_training = self.training
        try:
            self.eval()
            p = next(self.parameters())
            x = torch.zeros(1, self.channels, self.image_size, self.image_size, device=p.device, dtype=p.dtype)
            with torch.no_grad():
                self.decode(self.encode(x)[0])
        finally:
            for h in hooks:
                h.remove()
            self.train(was_training)
        return 2 * macs
