"""`python -m training.feature_net`: train the FeatureNet whose features the Fréchet distance compares.

Faces (`--data faces`, the default): the net learns, from procedural faces, what the face generator knows
about each face: mouth shape, eye hue, skin tone, hair, background hue. Its 128-d layer before those heads
is the feature space.

A labelled image folder (`--data FOLDER`, one subfolder per class, as training.data reads it): the net
learns to tell the classes apart; a fixed share of each class (15 %, seeded) is held out for the accuracy,
and the classifier is saved with the net so that training.evaluate can check generated images against
the class they were drawn for. Batches are class-balanced (the generated classes are balanced too) and
lightly augmented (left-right flips, shifts of up to 2 px on white), since folders are small.

A fixed number of steps (not a time budget) keeps the result the same on every machine for a seed.

Examples:
    OMP_NUM_THREADS=1 python -m training.feature_net --out checkpoints/feature_net.safetensors
    OMP_NUM_THREADS=1 python -m training.feature_net --data /data/twemoji --out runs/twemoji_feature_net.safetensors
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sagan_viz.feature_net import FeatureNet, FeatureNetConfig, class_agreement, images_to_tensor, save_feature_net
from sagan_viz.imaging import luma

from .data import IMAGE_SUFFIXES, load_dataset
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
    train_faces: int = 12000  # faces only
    held_out_faces: int = 2000  # faces only
    resolution: int = 32
    width: int = 32
    feature_dim: int = 128
    seed: int = 0
    data: str = "faces"  # or a labelled image folder
    held_out_fraction: float = 0.15  # folders only: share of each class held out for the accuracy
    split_seed: int = 0  # folders only: which images are held out (training.evaluate redraws the same split)
    weight_decay: float = 0.0  # folders only (AdamW); the faces are plentiful enough to need none


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
        "data": "faces",
        "resolution": options.resolution,
        "held_out_accuracy": held_out,
        "chance_accuracy": {name: round(1.0 / classes, 3) for name, (classes, _) in TASKS.items()},
        "faces_seeds": {"train": TRAIN_FACES_SEED, "held_out": HELD_OUT_FACES_SEED},
        "training": dataclasses.asdict(options),
        "wall_time_s": round(time.perf_counter() - started, 1),
        "torch": torch.__version__,
    }
    return model.trunk.eval().requires_grad_(False), record


def held_out_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out), sorted: per class round(fraction * count) images, at least 1 and never all
    of a class with two or more; chosen by a permutation seeded with seed, so the same labels give the same split."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held_out = []
    for label in np.unique(labels):  # ascending, so the draws do not depend on the order of the images
        members = np.flatnonzero(labels == label)
        count = 0 if len(members) < 2 else min(len(members) - 1, max(1, round(fraction * len(members))))
        held_out.append(rng.permutation(members)[:count])
    held_out = np.sort(np.concatenate(held_out or [np.zeros(0, np.int64)])).astype(np.int64)
    return np.setdiff1d(np.arange(len(labels)), held_out), held_out


def folder_class_names(folder: Path) -> list[str]:
    """First-level subfolders holding images, sorted: the class names training.data's labels index."""
    return sorted({path.relative_to(folder).parts[0] for path in folder.rglob("*")
                   if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and path.parent != folder})


def load_labelled_folder(folder: str | Path, resolution: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images (N, R, R, 3) uint8, labels (N,) int64, class names) of a folder with one subfolder per class."""
    folder = Path(folder).expanduser()
    dataset = load_dataset(str(folder), resolution)
    if dataset.labels is None or not dataset.name.startswith("folder:"):
        raise ValueError(f"{folder}: not a labelled image folder (every image in one of at least two class "
                         f"subfolders)")
    names = folder_class_names(folder)
    if len(names) != dataset.num_classes:
        raise ValueError(f"{folder}: {len(names)} class folders but {dataset.num_classes} classes with "
                         f"readable images; remove empty or unreadable class folders")
    return dataset.images.permute(0, 2, 3, 1).numpy(), dataset.labels.numpy(), names


def augment(images: torch.Tensor, generator: torch.Generator, shift: int = 2) -> torch.Tensor:
    """(B, 3, R, R) in [-1, 1], each flipped left-right with probability 1/2 and shifted by up to shift px on white."""
    flip = torch.rand(len(images), generator=generator) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    size = images.shape[-1]
    padded = F.pad(images, (shift,) * 4, value=1.0)  # white, the drawings' background
    offsets = torch.randint(0, 2 * shift + 1, (len(images), 2), generator=generator).tolist()
    return torch.stack([image[:, top : top + size, left : left + size] for image, (top, left) in zip(padded, offsets)])


def train_folder_feature_net(options: FeatureNetTraining, log=print) -> tuple[FeatureNet, dict]:
    """Train a FeatureNet with a classifier on a labelled image folder; returns it (eval mode) and its record."""
    started = time.perf_counter()
    torch.manual_seed(options.seed)
    folder = Path(options.data).expanduser().resolve()
    images, labels, classes = load_labelled_folder(folder, options.resolution)
    kept, held_out = held_out_split(labels, options.held_out_fraction, options.split_seed)
    inputs, targets = images_to_tensor(images[kept], options.resolution), torch.from_numpy(labels[kept])
    # Class-balanced batches: each class drawn equally often, as the generated classes are.
    weights = 1.0 / torch.bincount(targets, minlength=len(classes)).double()[targets]
    net = FeatureNet(FeatureNetConfig(resolution=options.resolution, width=options.width,
                                      feature_dim=options.feature_dim, classes=len(classes)))
    optimizer = torch.optim.AdamW(net.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
    order = torch.Generator().manual_seed(options.seed)
    for step in range(1, options.steps + 1):
        net.train()
        batch = torch.multinomial(weights, options.batch_size, replacement=True, generator=order)
        loss = F.cross_entropy(net.class_logits(augment(inputs[batch], order)), targets[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == options.steps:
            log(f"step {step}/{options.steps}  loss {loss.item():.3f}  ({time.perf_counter() - started:.0f} s)")
    net.eval().requires_grad_(False)
    agreement = class_agreement(net.classify(images[held_out]), labels[held_out], len(classes))
    record = {
        "what": f"FeatureNet for sagan-viz Fréchet distances and class agreement: a small CNN trained to classify "
                f"the {len(classes)} classes of an image folder; features = its {options.feature_dim}-d layer",
        "data": str(folder),
        "classes": classes,
        "images": len(labels),
        "resolution": options.resolution,
        "held_out": {"fraction": options.held_out_fraction, "seed": options.split_seed, "images": len(held_out)},
        # balanced = mean over classes: the ceiling for generated images, whose classes are balanced
        "held_out_accuracy": {"overall": agreement["share"], "balanced": agreement["balanced"]},
        "held_out_accuracy_per_class": dict(zip(classes, agreement["per_class"])),
        "chance_accuracy": round(1.0 / len(classes), 4),
        "training": dataclasses.asdict(options),
        "wall_time_s": round(time.perf_counter() - started, 1),
        "torch": torch.__version__,
    }
    return net, record


def build_parser() -> argparse.ArgumentParser:
    """The command line, every flag explained."""
    defaults = FeatureNetTraining()
    parser = argparse.ArgumentParser(
        prog="python -m training.feature_net", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train the small CNN whose features training.evaluate uses for Fréchet distances "
                    "(and, for an image folder, whose classifier it uses for class agreement).")
    parser.add_argument("--out", required=True, help="where to write the .safetensors file")
    parser.add_argument("--data", default=defaults.data,
                        help="'faces' (procedural faces) or a labelled image folder (one subfolder per class)")
    parser.add_argument("--resolution", type=int, default=defaults.resolution,
                        help="input size of the net (a multiple of 8); other sizes are resized to it")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="optimizer steps (the fixed budget)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--train-faces", type=int, default=defaults.train_faces, help="faces rendered to learn from")
    parser.add_argument("--held-out-faces", type=int, default=defaults.held_out_faces, help="faces for the accuracy")
    parser.add_argument("--held-out-fraction", type=float, default=defaults.held_out_fraction,
                        help="folders: share of each class held out for the accuracy")
    parser.add_argument("--split-seed", type=int, default=defaults.split_seed, help="folders: which images are held out")
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="folders: AdamW weight decay")
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
    if args.resolution < 8 or args.resolution % 8:
        parser.error(f"--resolution must be a positive multiple of 8, got {args.resolution}")
    if not 0.0 < args.held_out_fraction < 1.0:
        parser.error(f"--held-out-fraction must be between 0 and 1, got {args.held_out_fraction}")
    options = FeatureNetTraining(
        steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate, train_faces=args.train_faces,
        held_out_faces=args.held_out_faces, resolution=args.resolution, width=args.width, seed=args.seed,
        data=args.data, held_out_fraction=args.held_out_fraction, split_seed=args.split_seed,
        weight_decay=args.weight_decay)
    try:
        net, record = (train_feature_net if args.data == "faces" else train_folder_feature_net)(options)
    except ValueError as error:
        parser.error(str(error))
    path = save_feature_net(args.out, net, record)
    accuracies = "  ".join(f"{name} {value:.3f}" for name, value in record["held_out_accuracy"].items())
    print(f"wrote {path} ({record['wall_time_s']} s); held-out accuracy: {accuracies}")
    if "held_out_accuracy_per_class" in record:
        print("  per class: " + "  ".join(f"{name} {value:.2f}" for name, value
                                          in record["held_out_accuracy_per_class"].items() if value is not None)
              + f"  (chance {record['chance_accuracy']:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
