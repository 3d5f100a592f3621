"""Seeds to latents: the one place where a seed becomes z, the same on every device and machine."""
from __future__ import annotations

import torch

TRUNCATION_BOUND = 2.0  # BigGAN's truncated normal keeps values in [-2, 2] before scaling


def normal_latent(seed: int, z_dim: int) -> torch.Tensor:
    """z ~ N(0, I) of shape (1, z_dim) named by seed (this project's SAGAN prior)."""
    return torch.randn(1, z_dim, generator=torch.Generator().manual_seed(int(seed)))


def truncated_latent(seed: int, z_dim: int, truncation: float) -> torch.Tensor:
    """truncation * z with z ~ N(0, I) truncated to [-2, 2] (BigGAN's sampler), shape (1, z_dim).

    Rejection: values outside the bound are redrawn from the same seeded stream until none are left.
    """
    generator = torch.Generator().manual_seed(int(seed))
    z = torch.randn(1, z_dim, generator=generator)
    outside = z.abs() > TRUNCATION_BOUND
    while outside.any():
        z[outside] = torch.randn(int(outside.sum()), generator=generator)
        outside = z.abs() > TRUNCATION_BOUND
    return truncation * z
