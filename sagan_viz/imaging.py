"""Conversions between network tensors and images people look at."""
from __future__ import annotations

import numpy as np
import torch


def to_uint8_images(images: torch.Tensor) -> np.ndarray:
    """Network output (B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    scaled = (images.detach().float().clamp(-1, 1) + 1) * 127.5
    return scaled.round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def image_grid(images: np.ndarray, columns: int, padding: int = 1) -> np.ndarray:
    """(B, H, W, 3) uint8 -> one (rows*H', columns*W', 3) uint8 mosaic with white gaps."""
    count, height, width, channels = images.shape
    rows = -(-count // columns)
    grid = np.full(
        (rows * (height + padding) + padding, columns * (width + padding) + padding, channels), 255, np.uint8
    )
    for index, image in enumerate(images):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        grid[top : top + height, left : left + width] = image
    return grid


def upscale_nearest(image: np.ndarray, factor: int) -> np.ndarray:
    """(H, W, 3) -> (H*factor, W*factor, 3), each pixel a visible square."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
