"""Two views of a layer that no row view gives: who attends to a position, and where attention acts.

- The reverse map of key position i is the column β_{·,i}: how much every query j puts on i. Columns do
  not sum to 1 (a row does): a key every query ignores has a column of ~0, a popular one sums to more
  than N_query / N_key, the average a key receives.
- The attention effect at position j is ‖γ·o_j‖ / ‖x_j‖ (o after the layer's output projection, where it
  has one): how much the attention branch changes the features there, relative to what comes in.
"""
from __future__ import annotations

import numpy as np
import torch

from .analysis import find_peaks
from .grid import cell_center, cell_to_index, pixel_to_cell
from .inspect import Generation, LayerCapture
from .queries import QueryView

QUERY_ROWS_PER_BLOCK = 1024  # bounds the transient scores of a column: 1024 x N_key floats at a time


def attention_column(capture: LayerCapture, key_index: int) -> torch.Tensor:
    """β_{j,i} for every query j and key i = key_index: (N_query,); each entry is one row's share of i."""
    query, key = capture.query_key()  # (1, N, C_bar), (1, N_key, C_bar)
    if not 0 <= key_index < key.shape[1]:
        raise ValueError(f"key {key_index} is outside 0..{key.shape[1] - 1}")
    blocks = []
    with torch.no_grad():
        for start in range(0, query.shape[1], QUERY_ROWS_PER_BLOCK):
            scores = query[0, start : start + QUERY_ROWS_PER_BLOCK] @ key[0].T  # (rows, N_key)
            blocks.append(torch.softmax(scores, dim=-1)[:, key_index])  # each row normalised over all keys
    return torch.cat(blocks)


def reverse_view(generation: Generation, layer: str, pixel: tuple[float, float], colour) -> QueryView:
    """The key position under pixel (x, y) and the map, on the QUERY grid, of how much each query attends to it."""
    capture = generation.layer(layer)
    key_cell = pixel_to_cell(*pixel, generation.image_size, capture.key_shape)  # ValueError outside the image
    column = attention_column(capture, cell_to_index(key_cell, capture.key_shape))
    column_map = column.reshape(capture.query_shape).detach().float().cpu().numpy()  # (H_query, W_query)
    uniform = 1.0 / capture.key_count
    received = float(column_map.sum()) / (column_map.size * uniform)  # 1.0: the average key's share
    caption = (
        f"key cell {key_cell} (keys {capture.key_shape[0]}×{capture.key_shape[1]})",
        f"max β to it {column_map.max():.4f}",
        f"= {column_map.max() / uniform:.1f}× uniform",
        f"receives {received:.2f}× an average key",
    )
    return QueryView(pixel=cell_center(key_cell, capture.key_shape, generation.image_size), cell=key_cell,
                     colour=tuple(colour), attention_map=column_map,
                     peaks=find_peaks(column_map, standout_ratio=1.5), caption=caption)


def attention_effect(capture: LayerCapture) -> np.ndarray:
    """‖γ·o_j‖ / ‖x_j‖ at every position j of the layer's query grid: (H, W), 0 where γ = 0."""
    x = capture.features.unsqueeze(0)  # (1, C, H, W)
    with torch.no_grad():
        branch = capture.module.attention_branch(x)[0]  # (C, H, W)
    incoming = capture.features.norm(dim=0).clamp_min(1e-12)
    return (branch.norm(dim=0) / incoming).detach().double().cpu().numpy()
