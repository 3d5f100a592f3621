"""Scores that need no download: mirror asymmetry, eye-colour agreement, a Fréchet distance, attention statistics.

The procedural faces (training/data.py) are exactly mirror-symmetric and their two eyes share one
colour, so a generator's departure from either is measurable without any reference network. The
Fréchet distance uses FeatureNet, a small CNN trained on those faces (`python -m training.feature_net`),
instead of Inception: nothing is downloaded, and the numbers are comparable only with each other,
never with published FID values.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from .analysis import attention_entropy, mean_attention_distance, query_dependence
from .checkpoint import CheckpointError, write_atomically
from .imaging import to_uint8_images
from .families.interface import LoadedModel

FEATURE_NET_FORMAT = "sagan-viz-feature-net"
FEATURE_NET_VERSION = 1

# Where the procedural faces keep their eyes, in image coordinates [-1, 1] (y down). From the ranges in
# training/data.py: offsets 0.3..0.42 plus a radius of at most 0.15 in x; centres -0.26..0.034 in y.
# tests/test_metrics.py checks that every rendered eye falls inside this window.
EYE_WINDOW_ABS_X = (0.15, 0.57)
EYE_WINDOW_Y = (-0.36, 0.14)
MIN_EYE_CHROMA = 0.5  # real irises have chroma >= 0.6 (saturation >= 0.75, value >= 0.8)
EYE_AGREEMENT_THRESHOLD = 0.1  # RGB distance / sqrt(3); real faces: 0, random pairs: ~5% below it


def check_images(images: np.ndarray) -> None:
    """Raise ValueError unless images is a (N, H, W, 3) uint8 array."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        shape = getattr(images, "shape", None)
        raise ValueError(f"expected (N, H, W, 3) uint8 images, got {type(images).__name__} {shape} "
                         f"{getattr(images, 'dtype', '')}")


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


@dataclass(frozen=True)
class FeatureNetConfig:
    """Architecture of a FeatureNet; saved in its file."""

    resolution: int = 32
    width: int = 32
    feature_dim: int = 128


def images_to_tensor(images: np.ndarray, resolution: int) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, R, R) float32 in [-1, 1]; other sizes resized (bilinear, antialiased)."""
    check_images(images)
    tensor = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if tensor.shape[-2:] != (resolution, resolution):
        tensor = F.interpolate(tensor, size=(resolution, resolution), mode="bilinear", antialias=True,
                               align_corners=False)
    return tensor


class FeatureNet(nn.Module):
    """Four 3x3 convolutions (three with stride 2) and a linear layer: image (B, 3, R, R) -> feature (B, D)."""

    def __init__(self, config: FeatureNetConfig = FeatureNetConfig()) -> None:
        super().__init__()
        if config.resolution % 8 or config.resolution < 8:
            raise ValueError(f"FeatureNet resolution must be a multiple of 8, got {config.resolution}")
        self.config = config
        width = config.width
        channels = (3, width, 2 * width, 4 * width, 4 * width)
        layers = []
        for index in range(4):
            stride = 1 if index == 0 else 2
            layers += [nn.Conv2d(channels[index], channels[index + 1], 3, stride, padding=1), nn.ReLU()]
        self.convolutions = nn.Sequential(*layers)
        # Flatten, not pool: where things are (eyes left and right, mouth below) is part of a face.
        self.linear = nn.Linear(4 * width * (config.resolution // 8) ** 2, config.feature_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, R, R) in [-1, 1] -> (B, D) features (pre-activation output of the linear layer)."""
        return self.linear(self.convolutions(images).flatten(1))

    @torch.no_grad()
    def features(self, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
        """(N, H, W, 3) uint8 images -> (N, D) float64 features; images not at R x R are resized to it first."""
        check_images(images)
        device = next(self.parameters()).device
        outputs = [np.zeros((0, self.config.feature_dim))]
        for start in range(0, len(images), batch_size):
            batch = images_to_tensor(images[start : start + batch_size], self.config.resolution).to(device)
            outputs.append(self(batch).double().cpu().numpy())
        return np.concatenate(outputs)


def save_feature_net(path: str | Path, net: FeatureNet, record: dict) -> Path:
    """Write a FeatureNet atomically as .safetensors; record (JSON-able: accuracy, how trained) goes in the metadata."""
    tensors = {key: value.detach().cpu().contiguous().clone() for key, value in net.state_dict().items()}
    metadata = {
        "format": FEATURE_NET_FORMAT,
        "version": str(FEATURE_NET_VERSION),
        "config": json.dumps(asdict(net.config)),
        "record": json.dumps(record),
    }
    path = Path(path)
    write_atomically(path, save_safetensors_bytes(tensors, metadata=metadata))
    return path


def _feature_net_metadata(path: Path, raw: bytes) -> dict[str, str]:
    header_length = int.from_bytes(raw[:8], "little") if len(raw) >= 8 else 0
    try:
        if header_length <= 0 or 8 + header_length > len(raw):
            raise ValueError
        metadata = json.loads(raw[8 : 8 + header_length]).get("__metadata__") or {}
    except (ValueError, AttributeError, UnicodeDecodeError):
        raise CheckpointError(f"{path}: not a safetensors file, or truncated") from None
    if metadata.get("format") != FEATURE_NET_FORMAT:
        raise CheckpointError(f"{path}: a safetensors file, but not a sagan-viz feature net "
                              f"(no '{FEATURE_NET_FORMAT}' tag); make one with python -m training.feature_net")
    if metadata.get("version") != str(FEATURE_NET_VERSION):
        raise CheckpointError(f"{path}: feature net format version {metadata.get('version')}, "
                              f"this sagan-viz reads {FEATURE_NET_VERSION}")
    return metadata


def load_feature_net(path: str | Path, device: str | torch.device = "cpu") -> tuple[FeatureNet, dict]:
    """(FeatureNet in eval mode, its training record) from a .safetensors file; never executes code from it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such feature net file (make one with python -m training.feature_net)")
    raw = path.read_bytes()
    metadata = _feature_net_metadata(path, raw)
    try:
        net = FeatureNet(FeatureNetConfig(**json.loads(metadata["config"])))
        net.load_state_dict(load_safetensors_bytes(raw))
        record = json.loads(metadata.get("record", "{}"))
    except (SafetensorError, KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path}: damaged feature net ({type(error).__name__}: {error})") from None
    return net.to(device).eval().requires_grad_(False), record


@torch.no_grad()
def generated_images(model: LoadedModel, seeds: Iterable[int], weights: str = "ema",
                     batch_size: int = 250) -> np.ndarray:
    """(N, H, W, 3) uint8 images of the given seeds, batched; image k equals model.generate(seeds[k]).image."""
    seeds = [int(seed) for seed in seeds]
    generator = model.generator_for(weights)
    truncation = model.resolve_truncation(None)
    batches = [np.zeros((0, model.resolution, model.resolution, 3), np.uint8)]
    for start in range(0, len(seeds), batch_size):
        chunk = seeds[start : start + batch_size]
        z = torch.cat([model.latent(seed, truncation) for seed in chunk]).to(model.device)  # (B, z_dim)
        labels = None
        if model.conditional:  # the class generate() draws for a seed when none is given
            labels = model.label_tensor([model.default_label(seed) for seed in chunk])
        # eval-mode BN: batching changes nothing
        batches.append(to_uint8_images(model.run_generator(generator, z, labels, truncation)))
    return np.concatenate(batches)


def attention_statistics(model: LoadedModel, seeds: Iterable[int], weights: str = "ema",
                         max_pairs: int | None = 4096) -> dict[str, dict[str, float]]:
    """Per attention layer: distance, entropy and query_dependence averaged over seeds, and gamma.

    distance is in image widths, entropy and query_dependence in [0, 1] (see analysis.py);
    query_dependence samples max_pairs query pairs per image (None: all pairs, slow at 32x32 grids).
    D's layers see the generated image. An empty dict for a model without attention.
    """
    seeds = [int(seed) for seed in seeds]
    if not seeds:
        raise ValueError("attention_statistics needs at least one seed")
    sums: dict[str, dict[str, float]] = {}
    gamma: dict[str, float] = {}
    for seed in seeds:
        for name, layer in model.generate(seed, weights=weights).layers.items():
            beta = layer.attention.double().cpu().numpy()
            values = sums.setdefault(name, {"distance": 0.0, "entropy": 0.0, "query_dependence": 0.0})
            values["distance"] += mean_attention_distance(beta, layer.query_shape, layer.key_shape)
            values["entropy"] += attention_entropy(beta)
            values["query_dependence"] += query_dependence(beta, max_pairs=max_pairs, seed=seed)
            gamma[name] = layer.gamma
    return {name: {**{key: value / len(seeds) for key, value in values.items()}, "gamma": gamma[name]}
            for name, values in sums.items()}
