"""What an attention map says, in numbers: peaks and their mass, distance, entropy, query-dependence.

Every function takes beta (or one row of it reshaped onto the key grid) as a NumPy array or a
torch tensor and returns plain Python values. Orientation as in attention.py: row j of beta
(N_query, N_key) is the distribution over KEY positions for QUERY j, positions flattened row-major.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from .grid import cell_centres

QUERY_CHUNK = 256  # rows per block where a pairwise (N_query, N_key) intermediate would be large
# A peak must reach this many times the uniform value 1/N_key to earn an arrow: an untrained layer's
# beta sits within a few percent of uniform, and arrows there would point at noise.
STANDOUT_RATIO = 1.5


@dataclass(frozen=True)
class Peak:
    """A most-attended region of one attention map."""

    cell: tuple[int, int]  # (row, col) on the key grid
    value: float  # beta at the peak cell
    mass: float  # sum of beta over the (2*radius+1)^2 window around the cell, clipped at the border


def as_array(values) -> np.ndarray:
    """A NumPy float64 copy of a NumPy array or (any-device) torch tensor."""
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float64).numpy()
    return np.asarray(values, dtype=np.float64)


def window_maximum(values: np.ndarray, radius: int) -> np.ndarray:
    """Maximum over the (2r+1)^2 window around every cell of a 2-D array (border clipped)."""
    padded = np.pad(values, radius, constant_values=-np.inf)
    return sliding_window_view(padded, (2 * radius + 1, 2 * radius + 1)).max(axis=(-2, -1))


def window_sum(values: np.ndarray, cell: tuple[int, int], radius: int) -> float:
    """Sum over the (2r+1)^2 window around cell, clipped at the border."""
    row, column = cell
    window = values[max(row - radius, 0) : row + radius + 1, max(column - radius, 0) : column + radius + 1]
    return float(window.sum())


def find_peaks(attention_map, max_peaks: int = 3, radius: int = 1,
               standout_ratio: float = STANDOUT_RATIO) -> list[Peak]:
    """Up to max_peaks local maxima of a (H_key, W_key) map whose windows do not overlap, by mass.

    Only cells of at least standout_ratio times the map's mean count (for a beta row the mean is
    uniform, 1/N_key): a map where nothing stands out has no peaks.
    """
    values = as_array(attention_map)
    if values.ndim != 2:
        raise ValueError(f"attention_map must be 2-D (H_key, W_key), got shape {values.shape}")
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    is_local_maximum = values >= window_maximum(values, radius)
    candidates = np.flatnonzero(is_local_maximum)
    # Non-maximum suppression, highest value first (ties: first in row-major order): two windows of
    # radius r overlap unless their centres are more than 2r apart in Chebyshev distance.
    candidates = candidates[np.argsort(-values.ravel()[candidates], kind="stable")]
    chosen: list[tuple[int, int]] = []
    threshold = standout_ratio * float(values.mean())
    for index in candidates:
        if values.flat[index] <= 0 or values.flat[index] < threshold:
            break  # a window of zeros is no peak (beta itself is always > 0), nor one that does not stand out
        cell = divmod(int(index), values.shape[1])
        if all(max(abs(cell[0] - r), abs(cell[1] - c)) > 2 * radius for r, c in chosen):
            chosen.append(cell)
    peaks = [Peak(cell=cell, value=float(values[cell]), mass=window_sum(values, cell, radius)) for cell in chosen]
    peaks.sort(key=lambda peak: peak.mass, reverse=True)  # stable: equal masses keep value order
    return peaks[: max(max_peaks, 0)]


def peaks_mass_share(peaks: list[Peak]) -> float:
    """Share of a beta row's total mass (1.0) that the peaks' non-overlapping windows hold."""
    return float(sum(peak.mass for peak in peaks))


def check_attention(attention: np.ndarray, query_shape=None, key_shape=None) -> None:
    """Raise ValueError unless beta is (N_query, N_key) and matches the given grids."""
    if attention.ndim != 2:
        raise ValueError(f"attention must be (N_query, N_key), got shape {attention.shape}")
    if query_shape is not None and attention.shape[0] != query_shape[0] * query_shape[1]:
        raise ValueError(f"{attention.shape[0]} query rows do not fit a {query_shape} query grid")
    if key_shape is not None and attention.shape[1] != key_shape[0] * key_shape[1]:
        raise ValueError(f"{attention.shape[1]} key columns do not fit a {key_shape} key grid")


def mean_attention_distance(attention, query_shape: tuple[int, int], key_shape: tuple[int, int]) -> float:
    """Beta-weighted distance from each query to the key cell centres (image width = 1), mean over queries."""
    beta = as_array(attention)
    check_attention(beta, query_shape, key_shape)
    # Both grids tile the same image, so a pooled key cell's centre is where its 2x2 queries meet.
    aspect = query_shape[0] / query_shape[1]
    queries, keys = cell_centres(query_shape, aspect), cell_centres(key_shape, aspect)
    total = 0.0
    for start in range(0, len(queries), QUERY_CHUNK):
        block = queries[start : start + QUERY_CHUNK]
        distance = np.linalg.norm(block[:, None, :] - keys[None, :, :], axis=-1)  # (chunk, N_key)
        total += float((beta[start : start + QUERY_CHUNK] * distance).sum())
    return total / len(queries)


def row_entropy(rows: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of each row of a (..., N) tensor of distributions, with 0 log 0 = 0."""
    return -torch.special.xlogy(rows, rows).sum(dim=-1)


def attention_entropy(attention) -> float:
    """Mean row entropy divided by log(N_key): 0 = each query looks at one key, 1 = uniform."""
    beta = as_array(attention)
    check_attention(beta)
    if beta.shape[1] < 2:
        return 0.0
    return float(row_entropy(torch.from_numpy(beta)).mean() / np.log(beta.shape[1]))


def jensen_shannon(first: torch.Tensor, second: torch.Tensor, first_entropy, second_entropy) -> torch.Tensor:
    """Base-2 JS divergence between rows of two (M, N) tensors (row entropies in nats given), in [0, 1]."""
    middle = 0.5 * (first + second)
    divergence = (row_entropy(middle) - 0.5 * (first_entropy + second_entropy)) / np.log(2)
    return divergence.clamp(0.0, 1.0)  # rounding can step just outside


def query_dependence(attention, max_pairs: int | None = None, seed: int = 0) -> float:
    """Mean Jensen-Shannon divergence (base 2) between rows of different queries; 0 = all queries alike."""
    beta = as_array(attention)
    check_attention(beta)
    count = beta.shape[0]
    if count < 2:
        return 0.0
    rows = torch.from_numpy(beta)
    entropy = row_entropy(rows)  # (N_query,), computed once
    total_pairs = count * (count - 1) // 2
    if max_pairs is not None and max_pairs < total_pairs:
        if max_pairs < 1:
            raise ValueError(f"max_pairs must be >= 1, got {max_pairs}")
        rng = np.random.default_rng(seed)
        first = torch.from_numpy(rng.integers(0, count, max_pairs))
        second = (first + torch.from_numpy(rng.integers(1, count, max_pairs))) % count  # never the same query
        return float(jensen_shannon(rows[first], rows[second], entropy[first], entropy[second]).mean())
    total = 0.0
    for query in range(count - 1):  # all pairs (query, later): one (count - query - 1, N_key) block each
        later = slice(query + 1, None)
        total += float(jensen_shannon(rows[query], rows[later], entropy[query], entropy[later]).sum())
    return total / total_pairs
