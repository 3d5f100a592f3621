"""Training data held in memory as uint8: the procedural faces (faces.py), image folders and CIFAR-10 pickles."""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .faces import FACE_CLASSES, render_faces

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
CIFAR_CLASSES = 10


@dataclass(frozen=True)
class ImageDataset:
    """Images held in memory, ready for the trainer."""

    images: torch.Tensor  # (N, 3, R, R) uint8
    labels: torch.Tensor | None  # (N,) int64, or None when unlabeled
    num_classes: int  # 0 when unlabeled
    name: str  # e.g. "faces", "folder:/path", "cifar10:/path"

    def __len__(self) -> int:
        """Number of images."""
        return self.images.shape[0]


def to_model_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (B,3,R,R) -> float32 in [-1, 1]."""
    if images_uint8.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {images_uint8.dtype}")
    return images_uint8.to(torch.float32) / 127.5 - 1.0


def sample_batch(
    dataset: ImageDataset, batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A random batch (uint8 images, labels or None) drawn with the given generator (so resume can restore its state)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    # With replacement: every step is independent, so a resumed run needs only the generator state.
    indices = torch.randint(0, len(dataset), (batch_size,), generator=generator)
    labels = None if dataset.labels is None else dataset.labels[indices]
    return dataset.images[indices], labels


def _resize_uint8(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Bicubic resize of uint8 (N, 3, H, W) square images to (N, 3, R, R), in chunks to bound memory."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    chunks = []
    for start in range(0, images.shape[0], 1024):
        # uint8 in, uint8 out: torch's antialiased uint8 kernel (as in PIL) is several times faster on CPU.
        chunks.append(F.interpolate(images[start : start + 1024], size=(resolution, resolution), mode="bicubic",
                                    antialias=True, align_corners=False))
    return torch.cat(chunks) if chunks else images.new_zeros((0, 3, resolution, resolution))


def _on_white(image: Image.Image) -> Image.Image:
    """RGB with any transparency (RGBA, LA, or a palette's transparent index) composited on white."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _load_image(path: Path, resolution: int) -> np.ndarray:
    """One image file as (R, R, 3) uint8: transparency on white, short side resized to R (bicubic), centre-cropped."""
    with Image.open(path) as image:
        image = _on_white(image)
        width, height = image.size
        scale = resolution / min(width, height)
        new_size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
        image = image.resize(new_size, Image.Resampling.BICUBIC)
        left, top = (new_size[0] - resolution) // 2, (new_size[1] - resolution) // 2
        return np.asarray(image.crop((left, top, left + resolution, top + resolution)), dtype=np.uint8)


def _folder_labels(folder: Path, paths: list[Path]) -> tuple[torch.Tensor | None, int]:
    """Labels from first-level subfolders (sorted names) when every image sits in one of at least two."""
    parts = [path.relative_to(folder).parts for path in paths]
    if any(len(part) < 2 for part in parts):
        return None, 0
    class_names = sorted({part[0] for part in parts})
    if len(class_names) < 2:
        return None, 0
    index = {name: position for position, name in enumerate(class_names)}
    return torch.tensor([index[part[0]] for part in parts], dtype=torch.int64), len(class_names)


def _load_image_folder(folder: Path, resolution: int) -> ImageDataset:
    """Every image under folder (recursive, sorted), resized and centre-cropped to R x R."""
    paths = sorted(path for path in folder.rglob("*") if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found under folder {folder}")
    images, readable = [], []
    for path in paths:
        try:
            images.append(_load_image(path, resolution))
            readable.append(path)
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            warnings.warn(f"skipping unreadable image {path}: {error}", stacklevel=3)
    if not images:
        raise ValueError(f"none of the {len(paths)} image files under folder {folder} could be read")
    labels, num_classes = _folder_labels(folder, readable)
    tensor = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()  # (N, 3, R, R)
    return ImageDataset(images=tensor, labels=labels, num_classes=num_classes, name=f"folder:{folder}")


def _cifar_folder(folder: Path) -> Path | None:
    """The folder holding CIFAR-10 python pickles: folder itself or its cifar-10-batches-py child, else None."""
    for candidate in (folder, folder / "cifar-10-batches-py"):
        if (candidate / "batches.meta").is_file() and any(candidate.glob("data_batch_*")):
            return candidate
    return None


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 training batch as images (N, 3, 32, 32) uint8 and labels (N,) int64."""
    # Pickle can run code; it is tolerated only because this is the user's own local CIFAR download,
    # the format CIFAR-10 is distributed in. Never point this at files from elsewhere.
    try:
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as error:  # a corrupt pickle can raise almost anything
        raise ValueError(f"cannot read CIFAR-10 batch {path}: {error}") from error
    if len(labels) != len(data) or (len(labels) and (labels.min() < 0 or labels.max() >= CIFAR_CLASSES)):
        raise ValueError(f"CIFAR-10 batch {path} has {len(data)} images but labels that do not match")
    return data, labels


def _load_cifar(folder: Path, resolution: int) -> ImageDataset:
    """The CIFAR-10 training batches (data_batch_*) in folder, resized to R if R != 32."""
    batches = [_read_cifar_batch(path) for path in sorted(folder.glob("data_batch_*"))]
    images = torch.from_numpy(np.concatenate([images for images, _ in batches]))
    labels = torch.from_numpy(np.concatenate([labels for _, labels in batches]))
    return ImageDataset(images=_resize_uint8(images, resolution), labels=labels, num_classes=CIFAR_CLASSES,
                        name=f"cifar10:{folder}")


def load_dataset(source: str, resolution: int, *, size: int = 20000, seed: int = 0) -> ImageDataset:
    """'faces' -> procedural faces (size images); a folder with CIFAR-10 python pickles -> CIFAR; any other folder -> images found recursively."""
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    if source == "faces":
        if size < 1:
            raise ValueError(f"size must be positive for the faces data set, got {size}")
        images, labels = render_faces(size, resolution, seed)
        tensor = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # (N, 3, R, R)
        return ImageDataset(images=tensor, labels=torch.from_numpy(labels), num_classes=len(FACE_CLASSES),
                            name="faces")
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise ValueError(
            f"unknown data source {source!r}: expected 'faces', a folder of images "
            f"({', '.join(IMAGE_SUFFIXES)}), or a folder of CIFAR-10 python pickles (data_batch_1..5, batches.meta)"
        )
    cifar_folder = _cifar_folder(folder)
    if cifar_folder is not None:
        return _load_cifar(cifar_folder, resolution)
    return _load_image_folder(folder, resolution)
