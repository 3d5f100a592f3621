"""Conversions between network tensors and images people look at."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import torch

try:  # ISA-L's deflate writes the same zlib stream six times faster than zlib (benchmarks/README.md)
    from isal.isal_zlib import compress as deflate
except ImportError:  # a platform without isal wheels: the standard library, slower
    from zlib import compress as deflate


REC601_LUMA = np.array([0.299, 0.587, 0.114])  # perceived brightness of R, G and B (ITU-R BT.601)


def luma(rgb) -> np.ndarray:
    """Rec. 601 luma of RGB values (..., 3), in the same units (float64)."""
    return np.asarray(rgb, dtype=np.float64) @ REC601_LUMA


def check_images(images: np.ndarray) -> None:
    """Raise ValueError unless images is a (N, H, W, 3) uint8 array."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        shape = getattr(images, "shape", None)
        raise ValueError(f"expected (N, H, W, 3) uint8 images, got {type(images).__name__} {shape} "
                         f"{getattr(images, 'dtype', '')}")


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


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC of type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(image: np.ndarray, compress_level: int = 1, compress=None) -> bytes:
    """(H, W, 3) uint8 -> the bytes of an RGB PNG, written without row filters.

    Several times faster than PIL's PNG writer on our figures at about the same size: PIL tries every
    row filter on every row, and ours are mostly flat colour and nearest-neighbour blocks that deflate
    well unfiltered. compress(data, level) makes the zlib stream (default: ISA-L's when installed).
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"encode_png takes (H, W, 3) uint8, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    scanlines = np.zeros((height, 1 + 3 * width), np.uint8)  # each row: filter type 0 (none), then RGB bytes
    scanlines[:, 1:] = image.reshape(height, 3 * width)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, truecolour, no interlace
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", (compress or deflate)(scanlines.tobytes(), compress_level)) + png_chunk(b"IEND", b""))
