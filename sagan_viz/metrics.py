"""Scores that need no download: mirror asymmetry, eye-colour agreement, a Fréchet distance.

The procedural faces (training/data.py) are exactly mirror-symmetric and their two eyes share one
colour, so a generator's departure from either is measurable without any reference network. The
Fréchet distance compares FeatureNet features (feature_net.py); attention statistics over many seeds
are in sampling.py.
"""
from __future__ import annotations

import numpy as np

from .imaging import check_images

# Where the procedural faces keep their eyes, in image coordinates [-1, 1] (y down). From the ranges in
# training/data.py: offsets 0.3..0.42 plus a radius of at most 0.15 in x; centres -0.26..0.034 in y.
# tests/test_metrics.py checks that every rendered eye falls inside this window.
EYE_WINDOW_ABS_X = (0.15, 0.57)
EYE_WINDOW_Y = (-0.36, 0.14)
MIN_EYE_CHROMA = 0.5  # real irises have chroma >= 0.6 (saturation >= 0.75, value >= 0.8)
EYE_AGREEMENT_THRESHOLD = 0.1  # RGB distance / sqrt(3); real faces: 0, random pairs: ~5% below it


def mirror_asymmetry(images: np.ndarray, chunk: int = 256) -> float:
    """Mean |image - left-right mirror| over all pixels and channels of (N, H, W, 3) uint8, in [0, 1] units."""
    check_images(images)
    if len(images) == 0:
        raise ValueError("mirror_asymmetry needs at least one image")
    total = 0.0
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].astype(np.int16)
        total += float(np.abs(block - block[:, :, ::-1]).sum())
    return total / (images.size * 255.0)


def _window_columns_and_rows(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel columns of the left and right eye windows, and the rows, for an H x W image."""
    x = (2 * np.arange(width) + 1 - width) / width  # pixel centres, as render_faces samples them
    y = (2 * np.arange(height) + 1 - height) / height
    inside_x = (np.abs(x) >= EYE_WINDOW_ABS_X[0]) & (np.abs(x) <= EYE_WINDOW_ABS_X[1])
    rows = np.flatnonzero((y >= EYE_WINDOW_Y[0]) & (y <= EYE_WINDOW_Y[1]))
    return np.flatnonzero(inside_x & (x < 0)), np.flatnonzero(inside_x & (x > 0)), rows


def eye_colours(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour of the left and right eye of each face, (N, 3) each in [0, 1].

    An eye's colour is the most chromatic (max - min of RGB) pixel in that side's eye window: the
    irises are the most vivid thing there. On real faces at 32 px and above this finds the true
    eye colour within 1/255 in every face we tried; on generated faces it finds the most vivid spot,
    which is the iris once the generator draws one.
    """
    check_images(images)
    left_columns, right_columns, rows = _window_columns_and_rows(*images.shape[1:3])
    found = []
    for columns in (left_columns, right_columns):
        region = images[:, rows][:, :, columns].reshape(len(images), -1, 3).astype(np.float64) / 255.0
        chroma = region.max(axis=-1) - region.min(axis=-1)  # (N, pixels in window)
        found.append(region[np.arange(len(images)), chroma.argmax(axis=1)])
    return found[0], found[1]


def eye_colour_agreement(images: np.ndarray, threshold: float = EYE_AGREEMENT_THRESHOLD) -> float:
    """Share of faces whose two eyes are vivid (chroma >= MIN_EYE_CHROMA) and of one colour (distance < threshold).

    1.0 on the procedural faces at 32 px and above; about 0.05 for eyes paired at random. Meaningful only
    for face images at 32 px or more (at 16 px the irises blur into the skin).
    """
    left, right = eye_colours(images)
    vivid = np.minimum(np.ptp(left, axis=1), np.ptp(right, axis=1)) >= MIN_EYE_CHROMA
    distance = np.linalg.norm(left - right, axis=1) / np.sqrt(3.0)
    return float(np.mean(vivid & (distance < threshold)))


def _symmetric_square_root(matrix: np.ndarray) -> np.ndarray:
    """Principal square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets: |mu_a - mu_b|^2 + tr(A + B - 2 (AB)^1/2).

    Numerics: float64; covariances with N - 1 (as pytorch-fid). tr((AB)^1/2) is computed as the sum of
    square roots of the eigenvalues of A^1/2 B A^1/2, which is symmetric PSD and similar to AB, so eigh
    applies (no scipy.linalg.sqrtm, no complex parts); eigenvalues below 0 from rounding are clipped to 0.
    The result is clipped at 0 for the same reason.
    """
    a, b = (np.asarray(f, dtype=np.float64) for f in (features_a, features_b))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected two (N, D) feature arrays with the same D, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"need at least 2 samples per set for a covariance, got {len(a)} and {len(b)}")
    covariance_a = np.atleast_2d(np.cov(a, rowvar=False))
    covariance_b = np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _symmetric_square_root(covariance_a)
    middle = root_a @ covariance_b @ root_a
    middle = 0.5 * (middle + middle.T)  # symmetric up to rounding; make it exactly so for eigh
    trace_root_product = float(np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0.0, None)).sum())
    mean_term = float(np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2))
    distance = mean_term + float(np.trace(covariance_a) + np.trace(covariance_b)) - 2.0 * trace_root_product
    return max(distance, 0.0)
