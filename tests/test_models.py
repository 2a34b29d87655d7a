"""Shapes, sizes and FLOPs of trainables.models.VAE."""

import functools

import pytest
import torch

from trainables.models import VAE


@functools.cache
def _model(arch, channels, image_size, latent_dim):
    torch.manual_seed(0)
    return VAE(arch=arch, channels=channels, image_size=image_size, latent_dim=latent_dim)


def _n_params(model):
    return sum(p.numel() for p in model.parameters())


_CASES = [("standard", 64, c, l) for c in (1, 3) for l in (10, 48)] + [
    ("residual", 64, 1, 10), ("residual", 64, 3, 48), ("residual", 128, 3, 48)]


@pytest.mark.parametrize("arch,image_size,channels,latent_dim", _CASES)
def test_output_shapes(arch, image_size, channels, latent_dim):
    model = _model(arch, channels, image_size, latent_dim)
    x = torch.rand(2, channels, image_size, image_size)
    with torch.no_grad():
        assert model.encoder(x).shape == (2, 2 * latent_dim)
        out, mu, logvar, z = model(x)
        assert out.shape == x.shape
        assert mu.shape == logvar.shape == z.shape == (2, latent_dim)
        assert model.decode(z).shape == x.shape
        torch.testing.assert_close(torch.cat(model.encode(x), 1), model.encoder(x))


def test_parameter_counts():
    # Standard, 1 channel, L=10: encoder 382,932 + decoder 381,313 (disentanglement_lib's model).
    assert _n_params(_model("standard", 1, 64, 10)) == 764_245
    assert 0.7e6 < _n_params(_model("standard", 3, 64, 48)) < 0.9e6
    assert 15e6 < _n_params(_model("residual", 3, 64, 48)) < 20e6   # Soft-Intro, ~17-18M at 64x64
    assert 15e6 < _n_params(_model("residual", 1, 64, 10)) < 20e6
    assert 25e6 < _n_params(_model("residual", 3, 128, 48)) < 30e6  # one more 512 stage


def test_flops_per_image():
    standard = _model("standard", 1, 64, 10)
    # Hand count of multiply-accumulates, standard model, 1 channel, L=10:
    #   encoder: conv 32*32*32*16 + 16*16*32*512 + 8*8*64*512 + 4*4*64*1024 = 7,864,320
    #            fc 1024*256 + 256*20 = 267,264
    #   decoder: fc 10*256 + 256*1024 = 264,704
    #            deconv (input elements x C_out x 16) 1024*1024 + 4096*512 + 8192*512 + 32768*16 = 7,864,320
    #   total 16,260,608 MACs = 32,521,216 FLOPs
    assert standard.flops_per_image() == 32_521_216
    residual = _model("residual", 1, 64, 10)
    residual.train()
    flops = residual.flops_per_image()
    assert residual.training  # the mode is restored
    assert not any(m._forward_hooks for m in residual.modules())  # the hooks are removed
    assert flops > 10 * standard.flops_per_image()
    assert 2e9 < flops < 5e9


def test_bad_arguments():
    with pytest.raises(ValueError, match="standard, residual"):
        VAE(arch="dcgan", channels=1, image_size=64, latent_dim=10)
    with pytest.raises(ValueError, match="image_size=128"):
        VAE(arch="standard", channels=1, image_size=128, latent_dim=10)
    with pytest.raises(ValueError, match="image_size"):
        VAE(arch="residual", channels=3, image_size=100, latent_dim=10)
    with pytest.raises(ValueError, match="channels"):
        VAE(arch="standard", channels=2, image_size=64, latent_dim=10)
