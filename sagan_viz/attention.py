"""SAGAN self-attention (Zhang et al. 2018, section 3), with a fused and an inspection path.

Index orientation, as in the paper: s_ij = f(x_i)^T g(x_j) and
beta_{j,i} = softmax over i of s_ij, so row j of beta is the distribution over
KEY positions i for the QUERY position j. g is therefore the query projection and
f the key projection. There is no 1/sqrt(d) scaling in the paper.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

# Below this many scores (N_query x N_key) the explicit path is faster than the fused kernel, whose
# padding of q and k costs more than it saves: measured by benchmarks/bench_attention_paths.py (forward +
# backward, C = 64, one thread: explicit ÷ fused 0.80 at 256 x 256, 1.19 at 576 x 576, 1.96 at 4096 x 4096).
FUSED_MIN_SCORES = 512 * 512


@dataclass
class AttentionProjections:
    """The layer's 1x1 projections of one feature map, flattened to sequences."""

    query: torch.Tensor  # g(x_j): (B, N, C_bar)
    key: torch.Tensor  # f(x_i): (B, N_key, C_bar)
    value: torch.Tensor  # h(x_i): (B, N_key, C_value)
    query_shape: tuple[int, int]  # (H, W) of the query grid
    key_shape: tuple[int, int]  # (H_key, W_key): (H, W), or halved when keys are pooled


def attention_scores(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """s, indexed [b, j, i] = f(x_i)^T g(x_j): (B, N, C_bar), (B, N_key, C_bar) -> (B, N, N_key)."""
    return torch.bmm(query, key.transpose(1, 2))


def attention_weights(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """beta_{j,i}, eq. (1): softmax over keys i of s_ij; each row sums to 1. -> (B, N, N_key)."""
    return torch.softmax(attention_scores(query, key), dim=-1)


def attend_explicit(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """o_j = sum_i beta_{j,i} h(x_i), eq. (2), materialising beta. -> (o (B, N, C_value), beta)."""
    beta = attention_weights(query, key)  # (B, N, N_key)
    return torch.bmm(beta, value), beta


def attend_fused(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """o_j of eq. (2) without materialising beta (fused kernel, scale=1 as in the paper)."""
    # The fused (flash) kernels need q, k, v of one width with unit stride in the last dimension;
    # otherwise SDPA silently falls back to its math path, which builds the N x N scores. Zero
    # channels leave f(x_i)^T g(x_j) unchanged, so pad q and k (or v) to a common width.
    value_width = value.shape[-1]
    width = max(query.shape[-1], value_width)
    query = F.pad(query, (0, width - query.shape[-1])).unsqueeze(1)  # (B, 1, N, width): one head
    key = F.pad(key, (0, width - key.shape[-1])).unsqueeze(1)  # (B, 1, N_key, width)
    value = F.pad(value, (0, width - value_width)).unsqueeze(1).contiguous()  # (B, 1, N_key, width)
    out = F.scaled_dot_product_attention(query.contiguous(), key.contiguous(), value, scale=1.0)
    return out.squeeze(1)[..., :value_width]  # (B, N, C_value)


def residual_output(x: torch.Tensor, o: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """y = gamma * o + x, eq. (3)."""
    return gamma * o + x


def flatten_positions(feature_map: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C); position index n = row * W + column."""
    return feature_map.flatten(2).transpose(1, 2)


def unflatten_positions(sequence: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W), the inverse of flatten_positions."""
    # contiguous: a channels-last result would make y = gamma*o + x channels-last too, and the next
    # convolution would then sum in another order (gamma = 0 would no longer equal "no attention").
    return sequence.transpose(1, 2).reshape(sequence.shape[0], -1, height, width).contiguous()


def conv1x1(in_channels: int, out_channels: int, spectral: bool = True, bias: bool = False) -> nn.Module:
    """A 1x1 convolution, spectrally normalised (SN on every layer, section 4.1) unless spectral=False.

    spectral=False is for imported weights whose spectral norm was folded into plain weights at load.
    """
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=bias)
    return spectral_norm(conv) if spectral else conv


class SelfAttention(nn.Module):
    """The self-attention block of SAGAN; forward(x) returns only y.

    variant "paper": f, g: C -> C/8 and h: C -> C at full resolution (eqs. 1-3).
    variant "official": the authors' released code (and BigGAN's): keys and values max-pooled 2x2,
    h: C -> C/2 and an output 1x1 projection C/2 -> C.
    spectral=False: plain 1x1 convolutions, for imported weights whose spectral norm was folded at load;
    bias=True: 1x1 convolutions with biases (heykeetae's layer).
    """

    def __init__(self, channels: int, variant: str = "paper", spectral: bool = True, bias: bool = False) -> None:
        super().__init__()
        if variant not in ("paper", "official"):
            raise ValueError(f"unknown attention variant {variant!r}")
        if channels < 8:
            raise ValueError(f"self-attention needs at least 8 channels, got {channels}")
        self.channels = channels
        self.variant = variant
        reduced = channels // 8
        value_channels = channels if variant == "paper" else channels // 2
        self.f = conv1x1(channels, reduced, spectral, bias)  # keys
        self.g = conv1x1(channels, reduced, spectral, bias)  # queries
        self.h = conv1x1(channels, value_channels, spectral, bias)  # values
        self.v = conv1x1(value_channels, channels, spectral, bias) if variant == "official" else None
        self.gamma = nn.Parameter(torch.zeros(1))  # starts at exactly 0: attention off at init
        self.use_fused = True  # False: always the explicit path (tests and benchmarks); True: chosen by size

    def project(self, x: torch.Tensor) -> AttentionProjections:
        """f, g, h of eq. (1)-(2) for feature map x (B, C, H, W)."""
        height, width = x.shape[-2:]
        key_map, value_map = self.f(x), self.h(x)
        if self.variant == "official":
            key_map, value_map = F.max_pool2d(key_map, 2), F.max_pool2d(value_map, 2)
        return AttentionProjections(
            query=flatten_positions(self.g(x)),
            key=flatten_positions(key_map),
            value=flatten_positions(value_map),
            query_shape=(height, width),
            key_shape=tuple(key_map.shape[-2:]),
        )

    def output_from_attended(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """y from o (B, N, C_value): reshape, project back (official) and add the residual."""
        return residual_output(x, self.projected_output(x, attended), self.gamma)

    def projected_output(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """o as a map (B, C, H, W): reshaped, and projected back to C channels by v (official variant)."""
        o = unflatten_positions(attended, *x.shape[-2:])
        return o if self.v is None else self.v(o)

    def attention_branch(self, x: torch.Tensor) -> torch.Tensor:
        """gamma * o (B, C, H, W): what the layer adds to x, through the inspection path."""
        p = self.project(x)
        attended, _ = attend_explicit(p.query, p.key, p.value)
        return self.gamma * self.projected_output(x, attended)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """y = gamma * o + x for a feature map x (B, C, H, W)."""
        p = self.project(x)
        if self.use_fused and p.query.shape[1] * p.key.shape[1] >= FUSED_MIN_SCORES:
            attended = attend_fused(p.query, p.key, p.value)  # large maps: no N x N_key scores in memory
        else:
            attended, _ = attend_explicit(p.query, p.key, p.value)
        return self.output_from_attended(x, attended)

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(y, beta) through the inspection path; beta is (B, N, N_key)."""
        p = self.project(x)
        attended, beta = attend_explicit(p.query, p.key, p.value)
        return self.output_from_attended(x, attended), beta

    def query_key(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """g(x_j) (B, N, C_bar) and f(x_i) (B, N_key, C_bar): all β needs, without the values."""
        key_map = self.f(x)
        if self.variant == "official":
            key_map = F.max_pool2d(key_map, 2)
        return flatten_positions(self.g(x)), flatten_positions(key_map)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """beta (B, N, N_key) for input x, without computing y."""
        p = self.project(x)
        return attention_weights(p.query, p.key)

    def key_shape(self, height: int, width: int) -> tuple[int, int]:
        """The (H, W) grid a beta row lives on, for a query grid of H x W."""
        return (height // 2, width // 2) if self.variant == "official" else (height, width)


def set_attention_path(model: nn.Module, fused: bool) -> None:
    """Switch every SelfAttention in model between the fused and the explicit path."""
    for module in model.modules():
        if isinstance(module, SelfAttention):
            module.use_fused = fused

