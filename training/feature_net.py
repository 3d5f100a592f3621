"""`python -m training.feature_net`: train the FeatureNet whose features the Fréchet distance compares.

The net learns, from procedural faces, what the face generator knows about each face: mouth shape,
eye hue, skin tone, hair, background hue. Its 128-d layer before those heads is the feature space.
A fixed number of steps (not a time budget) keeps the result the same on every machine for a seed.

Example:
    OMP_NUM_THREADS=1 python -m training.feature_net --out checkpoints/feature_net.safetensors
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sagan_viz.feature_net import FeatureNet, FeatureNetConfig, images_to_tensor, save_feature_net
from sagan_viz.imaging import luma

from .faces import FACE_CLASSES, FaceParameters, face_parameters, render_faces

# Face seeds: the GAN runs train on seed 0 (training.train's default) and evaluate.py compares with
# seeds 1 and 2, so the feature net learns from faces none of those use.
TRAIN_FACES_SEED = 3
HELD_OUT_FACES_SEED = 4
HUE_BINS = 6


@dataclass(frozen=True)
class FeatureNetTraining:
    """How to train a FeatureNet."""

    steps: int = 350
    batch_size: int = 128
    learning_rate: float = 2e-3
    train_faces: int = 12000
    held_out_faces: int = 2000
    resolution: int = 32
    width: int = 32
    feature_dim: int = 128
    seed: int = 0


def hue(rgb: np.ndarray) -> np.ndarray:
    """Hue in [0, 1) of (N, 3) RGB colours (any scale); grey gets 0."""
    rgb = np.asarray(rgb, dtype=np.float64)
    high, low = rgb.max(axis=1), rgb.min(axis=1)
    chroma = np.where(high > low, high - low, 1.0)
    red, green, blue = rgb.T
    sector = np.where(high == red, ((green - blue) / chroma) % 6.0,
                      np.where(high == green, (blue - red) / chroma + 2.0, (red - green) / chroma + 4.0))
    return np.where(high > low, sector / 6.0, 0.0) % 1.0


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of (N, 3) RGB in [0, 255]."""
    return luma(rgb)


def hue_bin(rgb: np.ndarray) -> np.ndarray:
    """Which of HUE_BINS equal hue sectors each colour falls in."""
    return np.minimum((hue(rgb) * HUE_BINS).astype(np.int64), HUE_BINS - 1)


# task name -> (number of classes, labels from the generator's parameters)
TASKS = {
    "mouth": (len(FACE_CLASSES), lambda faces: faces.labels),
    "eye_hue": (HUE_BINS, lambda faces: hue_bin(faces.eye_colour)),
    "skin_tone": (4, lambda faces: np.digitize(luminance(faces.skin_colour), [120.0, 165.0, 205.0])),
    # 0: no hair, 1: dark hair, 2: light hair
    "hair": (3, lambda faces: np.where(faces.has_hair, 1 + (luminance(faces.hair_colour) > 100.0), 0)),
    "background_hue": (HUE_BINS, lambda faces: hue_bin(faces.background_top)),
}


def face_labels(faces: FaceParameters) -> dict[str, torch.Tensor]:
    """Task name -> (N,) int64 class of each face."""
    return {name: torch.as_tensor(np.asarray(labels(faces), dtype=np.int64)) for name, (_, labels) in TASKS.items()}


class FeatureNetWithHeads(nn.Module):
    """A FeatureNet and one linear classifier per task on its (ReLU'd) features; only the trunk is saved."""

    def __init__(self, config: FeatureNetConfig) -> None:
        super().__init__()
        self.trunk = FeatureNet(config)
        self.heads = nn.ModuleDict({name: nn.Linear(config.feature_dim, classes) for name, (classes, _) in TASKS.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 3, R, R) -> task name -> logits (B, classes)."""
        features = F.relu(self.trunk(images))
        return {name: head(features) for name, head in self.heads.items()}


def face_set(count: int, seed: int, resolution: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Rendered faces as model input (N, 3, R, R) and their labels per task."""
    images, _ = render_faces(count, resolution, seed)
    return images_to_tensor(images, resolution), face_labels(face_parameters(count, seed))


@torch.no_grad()
def accuracy(model: FeatureNetWithHeads, images: torch.Tensor, labels: dict[str, torch.Tensor]) -> dict[str, float]:
    """Task name -> share of faces classified correctly."""
    model.eval()
    correct = {name: 0 for name in TASKS}
    for start in range(0, len(images), 500):
        logits = model(images[start : start + 500])
        for name in TASKS:
            correct[name] += int((logits[name].argmax(1) == labels[name][start : start + 500]).sum())
    return {name: correct[name] / len(images) for name in TASKS}


def train_feature_net(options: FeatureNetTraining, log=print) -> tuple[FeatureNet, dict]:
    """Train a FeatureNet; returns it (eval mode) and the record saved with it."""
    started = time.perf_counter()
    torch.manual_seed(options.seed)
    train_images, train_labels = face_set(options.train_faces, TRAIN_FACES_SEED, options.resolution)
    held_out_images, held_out_labels = face_set(options.held_out_faces, HELD_OUT_FACES_SEED, options.resolution)
    config = FeatureNetConfig(resolution=options.resolution, width=options.width, feature_dim=options.feature_dim)
    model = FeatureNetWithHeads(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.learning_rate)
    order = torch.Generator().manual_seed(options.seed)
    for step in range(1, options.steps + 1):
        model.train()
        batch = torch.randint(0, len(train_images), (options.batch_size,), generator=order)
        logits = model(train_images[batch])
        loss = sum(F.cross_entropy(logits[name], train_labels[name][batch]) for name in TASKS)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == options.steps:
            log(f"step {step}/{options.steps}  loss {loss.item():.3f}  ({time.perf_counter() - started:.0f} s)")
    held_out = accuracy(model, held_out_images, held_out_labels)
    record = {
        "what": "FeatureNet for sagan-viz Fréchet distances: a small CNN trained to classify procedural "
                "faces (mouth, eye hue, skin tone, hair, background hue); features = its 128-d layer",
        "resolution": options.resolution,
        "held_out_accuracy": held_out,
        "chance_accuracy": {name: round(1.0 / classes, 3) for name, (classes, _) in TASKS.items()},
        "faces_seeds": {"train": TRAIN_FACES_SEED, "held_out": HELD_OUT_FACES_SEED},
        "training": dataclasses.asdict(options),
        "wall_time_s": round(time.perf_counter() - started, 1),
        "torch": torch.__version__,
    }
    return model.trunk.eval().requires_grad_(False), record


def build_parser() -> argparse.ArgumentParser:
    """The command line, every flag explained."""
    defaults = FeatureNetTraining()
    parser = argparse.ArgumentParser(
        prog="python -m training.feature_net", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train the small CNN whose features training.evaluate uses for Fréchet distances.")
    parser.add_argument("--out", required=True, help="where to write the .safetensors file")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="optimizer steps (the fixed budget)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--train-faces", type=int, default=defaults.train_faces, help="faces rendered to learn from")
    parser.add_argument("--held-out-faces", type=int, default=defaults.held_out_faces, help="faces for the accuracy")
    parser.add_argument("--width", type=int, default=defaults.width, help="channels of the first convolution")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seeds initialisation and batch order")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse flags, train, save; errors are one line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("steps", "batch_size", "train_faces", "held_out_faces", "width"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    options = FeatureNetTraining(steps=args.steps, batch_size=args.batch_size, train_faces=args.train_faces,
                                 held_out_faces=args.held_out_faces, width=args.width, seed=args.seed)
    net, record = train_feature_net(options)
    path = save_feature_net(args.out, net, record)
    accuracies = "  ".join(f"{name} {value:.3f}" for name, value in record["held_out_accuracy"].items())
    print(f"wrote {path} ({record['wall_time_s']} s); held-out accuracy: {accuracies}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
