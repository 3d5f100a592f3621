"""FeatureNet: the small CNN whose features the Fréchet distance compares, and its file format.

Trained by `python -m training.feature_net` on the procedural faces (several attribute heads, not saved)
or on a labelled image folder (one classifier over the folder's classes, saved with the net, so that
generated images can be checked against the class they were drawn for), instead of Inception: nothing is
downloaded, and its distances are comparable only with each other, never with published FID values.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from .atomic_files import write_atomically
from .checkpoint import CheckpointError
from .imaging import check_images
from .safetensors_file import open_regular_file, read_header, read_tensors

FEATURE_NET_FORMAT = "sagan-viz-feature-net"
FEATURE_NET_VERSION = 2  # 2: a net may carry a classifier (config.classes > 0)
READABLE_VERSIONS = ("1", "2")


@dataclass(frozen=True)
class FeatureNetConfig:
    """Architecture of a FeatureNet; saved in its file."""

    resolution: int = 32
    width: int = 32
    feature_dim: int = 128
    classes: int = 0  # > 0: a linear classifier over that many classes on the (ReLU'd) features


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
        # Built last, and only when asked for: a net without classes initialises and saves as before.
        self.classifier = nn.Linear(config.feature_dim, config.classes) if config.classes > 0 else None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, R, R) in [-1, 1] -> (B, D) features (pre-activation output of the linear layer)."""
        return self.linear(self.convolutions(images).flatten(1))

    def class_logits(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, R, R) in [-1, 1] -> (B, classes) logits of the classifier on the ReLU'd features."""
        if self.classifier is None:
            raise ValueError("this feature net has no classifier (it was trained on the procedural faces); "
                             "make one for a labelled folder with python -m training.feature_net --data FOLDER")
        return self.classifier(F.relu(self(images)))

    @torch.no_grad()
    def _batched(self, images: np.ndarray, function, width: int, batch_size: int) -> np.ndarray:
        """function applied to (N, H, W, 3) uint8 images, resized to R x R, batch by batch -> (N, width)."""
        check_images(images)
        device = next(self.parameters()).device
        outputs = [np.zeros((0, width))]
        for start in range(0, len(images), batch_size):
            batch = images_to_tensor(images[start : start + batch_size], self.config.resolution).to(device)
            outputs.append(function(batch).double().cpu().numpy())
        return np.concatenate(outputs)

    def features(self, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
        """(N, H, W, 3) uint8 images -> (N, D) float64 features; images not at R x R are resized to it first."""
        return self._batched(images, self, self.config.feature_dim, batch_size)

    def classify(self, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
        """(N, H, W, 3) uint8 images -> (N,) int64 class the classifier picks for each."""
        logits = self._batched(images, self.class_logits, self.config.classes, batch_size)
        return logits.argmax(axis=1).astype(np.int64)


def class_agreement(predicted: np.ndarray, labels: np.ndarray, classes: int) -> dict:
    """How often predicted == labels: 'share' of all images, 'per_class' (None where a class has no image)
    and 'balanced' (the mean over classes that have images; equals 'share' when the classes are balanced).

    With labels independent of the images (shuffled, or a generator that ignores its class) the
    expected share is 1/classes for balanced labels, whatever the classifier does.
    """
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    if predicted.shape != labels.shape or predicted.ndim != 1 or len(labels) == 0:
        raise ValueError(f"expected two non-empty (N,) label arrays, got {predicted.shape} and {labels.shape}")
    correct = predicted == labels
    per_class = [float(correct[labels == label].mean()) if np.any(labels == label) else None
                 for label in range(classes)]
    present = [value for value in per_class if value is not None]
    return {"share": float(correct.mean()), "balanced": float(np.mean(present)), "per_class": per_class}


def save_feature_net(path: str | Path, net: FeatureNet, record: dict) -> Path:
    """Write a FeatureNet atomically as .safetensors; record (JSON-able: accuracy, how trained) goes in the metadata."""
    tensors = {key: value.detach().cpu().contiguous().clone() for key, value in net.state_dict().items()}
    config = asdict(net.config)
    if not net.config.classes:
        del config["classes"]  # a net without a classifier is exactly a version-1 file: older readers keep reading it
    metadata = {
        "format": FEATURE_NET_FORMAT,
        "version": str(FEATURE_NET_VERSION if net.config.classes else 1),
        "config": json.dumps(config),
        "record": json.dumps(record),
    }
    path = Path(path)
    write_atomically(path, save_safetensors_bytes(tensors, metadata=metadata))
    return path


def _check_metadata(path: Path, metadata: dict[str, str]) -> None:
    if metadata.get("format") != FEATURE_NET_FORMAT:
        raise CheckpointError(f"{path}: a safetensors file, but not a sagan-viz feature net "
                              f"(no '{FEATURE_NET_FORMAT}' tag); make one with python -m training.feature_net")
    if metadata.get("version") not in READABLE_VERSIONS:
        raise CheckpointError(f"{path}: feature net format version {metadata.get('version')}, "
                              f"this sagan-viz reads versions {', '.join(READABLE_VERSIONS)}")


def bundled_feature_net(data_set: str = "faces") -> Path:
    """The feature net shipped with the package for a data set ('faces' or 'twemoji')."""
    path = Path(str(resources.files("sagan_viz") / "data" / f"feature_net_{data_set}.safetensors"))
    if not path.is_file():
        raise CheckpointError(f"{path}: no bundled feature net for {data_set!r} (make one with python -m training.feature_net)")
    return path


def load_feature_net(path: str | Path, device: str | torch.device = "cpu") -> tuple[FeatureNet, dict]:
    """(FeatureNet in eval mode, its training record) from a .safetensors file; never executes code from it.

    Read through the checkpoints' bounded reader: the file and header are checked before any data is read.
    """
    path = Path(path)
    with open_regular_file(path) as (stream, size):
        header = read_header(path, stream, size)
        _check_metadata(path, header.metadata)
        tensors, _ = read_tensors(path, stream, header)
    try:
        net = FeatureNet(FeatureNetConfig(**json.loads(header.metadata["config"])))
        net.load_state_dict(tensors)
        record = json.loads(header.metadata.get("record", "{}"))
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path}: damaged feature net ({type(error).__name__}: {error})") from None
    return net.to(device).eval().requires_grad_(False), record
