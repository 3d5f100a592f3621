"""Training data: procedural cartoon faces, image folders and CIFAR-10 pickles, held in memory as uint8."""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

FACE_CLASSES = ("smile", "neutral", "open")  # labels of the procedural faces (mouth shape)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
CIFAR_CLASSES = 10

# Each face draws this many uniforms from its own generator; parameters use a fixed slot each, so
# adding a parameter in a spare slot later leaves every existing face unchanged.
_UNIFORMS_PER_FACE = 32
_SUPERSAMPLE = 2  # 2x2 samples per pixel give soft, anti-aliased edges
_SAMPLES_PER_CHUNK = 2**24  # supersamples per vectorised pass: bounds memory at any resolution

# Natural skin tones from light to dark; a face picks a point between two neighbours.
_SKIN_TONES = np.array(
    [[255, 224, 196], [241, 194, 150], [224, 172, 122], [198, 134, 86], [141, 85, 54], [92, 56, 38]],
    dtype=np.float32,
)
_HAIR_COLOURS = np.array(
    [[25, 20, 20], [70, 42, 25], [120, 75, 40], [220, 180, 100], [170, 60, 25], [150, 150, 155]],
    dtype=np.float32,
)
_PUPIL_COLOUR = np.array([15, 12, 12], dtype=np.float32)


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


@dataclass(frozen=True)
class FaceParameters:
    """What each procedural face is made of; arrays over faces, coordinates in [-1, 1], y pointing down."""

    labels: np.ndarray  # (N,) int64, index into FACE_CLASSES
    background_top: np.ndarray  # (N, 3) float32 RGB in [0, 255]
    background_bottom: np.ndarray  # (N, 3)
    face_centre_y: np.ndarray  # (N,)
    face_radius_x: np.ndarray  # (N,)
    face_radius_y: np.ndarray  # (N,)
    skin_colour: np.ndarray  # (N, 3)
    eye_colour: np.ndarray  # (N, 3), shared by both eyes: the long-range dependency to learn
    eye_offset_x: np.ndarray  # (N,) eyes sit at x = ±eye_offset_x
    eye_centre_y: np.ndarray  # (N,)
    eye_radius_x: np.ndarray  # (N,)
    eye_radius_y: np.ndarray  # (N,)
    pupil_fraction: np.ndarray  # (N,) pupil radius over eye radius
    mouth_centre_y: np.ndarray  # (N,)
    mouth_half_width: np.ndarray  # (N,)
    mouth_colour: np.ndarray  # (N, 3)
    has_hair: np.ndarray  # (N,) bool
    hair_colour: np.ndarray  # (N, 3)
    hair_bottom_y: np.ndarray  # (N,) hair is cut off below this height
    fringe_y: np.ndarray  # (N,) hair covers the forehead above this height


def _lerp(low: float, high: float, fraction: np.ndarray) -> np.ndarray:
    """Map uniforms in [0, 1) linearly onto [low, high)."""
    return (low + (high - low) * fraction).astype(np.float32)


def _hsv_to_rgb(hue: np.ndarray, saturation: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Vectorised HSV (each in [0, 1]) to RGB in [0, 255]; returns (..., 3) float32."""
    channels = []
    for offset in (5.0, 3.0, 1.0):  # the closed form of HSV->RGB, one offset per channel
        sector = (offset + hue * 6.0) % 6.0
        ramp = np.clip(np.minimum(sector, 4.0 - sector), 0.0, 1.0)
        channels.append(value - value * saturation * ramp)
    return (np.stack(channels, axis=-1) * 255.0).astype(np.float32)


def _palette_pick(palette: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """Colour between neighbouring palette entries at position fraction in [0, 1); (N, 3)."""
    position = fraction * (len(palette) - 1)
    lower = np.floor(position).astype(np.int64)
    weight = (position - lower)[:, None]
    return (palette[lower] * (1 - weight) + palette[lower + 1] * weight).astype(np.float32)


def _face_uniforms(count: int, seed: int, first_index: int) -> np.ndarray:
    """(count, _UNIFORMS_PER_FACE) uniforms; row k comes from a generator seeded by (seed, first_index + k)."""
    if count < 0 or first_index < 0 or seed < 0:
        raise ValueError(f"count, seed and first_index must be non-negative, got {count}, {seed}, {first_index}")
    rows = [np.random.default_rng([seed, index]).random(_UNIFORMS_PER_FACE) for index in
            range(first_index, first_index + count)]
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, _UNIFORMS_PER_FACE), np.float32)


def _mouth_colour(skin_colour: np.ndarray, hue: np.ndarray, saturation: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Red lips, dark on light skin and light pink on dark skin, so the mouth always stands out; (N, 3)."""
    dark_skin = skin_colour @ np.array([0.299, 0.587, 0.114], dtype=np.float32) < 140.0
    return _hsv_to_rgb(
        _lerp(0.95, 1.02, hue) % 1.0,
        np.where(dark_skin, _lerp(0.45, 0.65, saturation), _lerp(0.7, 0.9, saturation)),
        np.where(dark_skin, _lerp(0.85, 1.0, value), _lerp(0.35, 0.55, value)),
    )


def face_parameters(count: int, seed: int, first_index: int = 0) -> FaceParameters:
    """Parameters of procedural faces first_index .. first_index + count - 1 for this seed."""
    uniform = _face_uniforms(count, seed, first_index).T  # (slots, N): one slot per parameter
    face_centre_y = _lerp(-0.02, 0.12, uniform[5])
    face_radius_x = _lerp(0.62, 0.76, uniform[6])
    face_radius_y = _lerp(0.72, 0.86, uniform[7])
    background_saturation, background_value = _lerp(0.25, 0.7, uniform[2]), _lerp(0.55, 0.95, uniform[3])
    background_top = _hsv_to_rgb(uniform[1], background_saturation, background_value)
    darkening = _lerp(0.6, 1.0, uniform[4])  # the bottom is darker: a soft vertical gradient
    background_bottom = _hsv_to_rgb(uniform[1], background_saturation, background_value * darkening)
    skin_jitter = (np.stack([uniform[9], uniform[10], uniform[11]], axis=1) - 0.5) * 24.0
    skin_colour = np.clip(_palette_pick(_SKIN_TONES, uniform[8]) + skin_jitter, 0, 255)
    eye_radius_x = _lerp(0.11, 0.15, uniform[16])
    hair_jitter = (uniform[27] - 0.5)[:, None] * 30.0
    return FaceParameters(
        labels=np.minimum((uniform[0] * len(FACE_CLASSES)).astype(np.int64), len(FACE_CLASSES) - 1),
        background_top=background_top,
        background_bottom=background_bottom,
        face_centre_y=face_centre_y,
        face_radius_x=face_radius_x,
        face_radius_y=face_radius_y,
        skin_colour=skin_colour.astype(np.float32),
        # Any hue, strongly saturated, so the right eye cannot be guessed from the skin or background.
        eye_colour=_hsv_to_rgb(uniform[12], _lerp(0.75, 1.0, uniform[13]), _lerp(0.8, 1.0, uniform[14])),
        eye_offset_x=_lerp(0.3, 0.42, uniform[15]),
        eye_centre_y=face_centre_y - face_radius_y * _lerp(0.12, 0.28, uniform[18]),
        eye_radius_x=eye_radius_x,
        eye_radius_y=eye_radius_x * _lerp(1.0, 1.3, uniform[17]),
        pupil_fraction=_lerp(0.35, 0.5, uniform[19]),
        mouth_centre_y=face_centre_y + face_radius_y * _lerp(0.4, 0.52, uniform[21]),
        mouth_half_width=_lerp(0.2, 0.3, uniform[20]),
        mouth_colour=_mouth_colour(skin_colour, uniform[22], uniform[23], uniform[24]),
        has_hair=uniform[25] < 0.75,
        hair_colour=np.clip(_palette_pick(_HAIR_COLOURS, uniform[26]) + hair_jitter, 0, 255).astype(np.float32),
        hair_bottom_y=face_centre_y + face_radius_y * _lerp(-0.3, 0.3, uniform[28]),
        fringe_y=face_centre_y - face_radius_y * _lerp(0.5, 0.75, uniform[29]),
    )


def _column(values: np.ndarray) -> np.ndarray:
    """(N,) -> (N, 1, 1) so per-face values broadcast over the sample grid."""
    return values[:, None, None]


def _inside_ellipse(x: np.ndarray, y: np.ndarray, centre_x, centre_y, radius_x, radius_y) -> np.ndarray:
    """Boolean mask of grid samples inside per-face ellipses; (N, H, W)."""
    return ((x - centre_x) / radius_x) ** 2 + ((y - centre_y) / radius_y) ** 2 <= 1.0


def _mouth_mask(x: np.ndarray, y: np.ndarray, faces: FaceParameters) -> np.ndarray:
    """Mouth of each face, its shape chosen by the label: an arc, a bar or an open ellipse; (N, H, W)."""
    centre_y, half_width = _column(faces.mouth_centre_y), _column(faces.mouth_half_width)
    thickness = 0.06  # half-thickness of the lips: about two pixels at 32x32
    dip = half_width * 0.45
    smile_curve = centre_y + dip * (0.5 - (x / half_width) ** 2)  # corners up, middle down
    smile = (np.abs(y - smile_curve) <= thickness) & (x <= half_width)
    neutral = (np.abs(y - centre_y) <= thickness) & (x <= half_width * 0.85)
    open_mouth = _inside_ellipse(x, y, 0.0, centre_y, half_width * 0.6, half_width * 0.6)
    label = _column(faces.labels)
    return np.where(label == 0, smile, np.where(label == 1, neutral, open_mouth))


def _shape_layers(x: np.ndarray, y: np.ndarray, faces: FaceParameters) -> list[tuple[np.ndarray, np.ndarray]]:
    """(mask (N, H, W), colour (N, 3)) of each shape of the faces, painted in this order."""
    centre_y = _column(faces.face_centre_y)
    radius_x, radius_y = _column(faces.face_radius_x), _column(faces.face_radius_y)
    hair_cap = _inside_ellipse(x, y, 0.0, centre_y - 0.06, radius_x * 1.1, radius_y * 1.02)
    hair_cap &= (y <= _column(faces.hair_bottom_y)) & _column(faces.has_hair)
    face = _inside_ellipse(x, y, 0.0, centre_y, radius_x, radius_y)
    fringe = face & (y <= _column(faces.fringe_y)) & _column(faces.has_hair)
    eye_x, eye_y = _column(faces.eye_offset_x), _column(faces.eye_centre_y)
    eye_radius_x, eye_radius_y = _column(faces.eye_radius_x), _column(faces.eye_radius_y)
    pupil_radius = eye_radius_x * _column(faces.pupil_fraction)
    return [
        (hair_cap, faces.hair_colour),
        (face, faces.skin_colour),
        (fringe, faces.hair_colour),
        (_inside_ellipse(x, y, eye_x, eye_y, eye_radius_x, eye_radius_y), faces.eye_colour),
        (_inside_ellipse(x, y, eye_x, eye_y, pupil_radius, pupil_radius),
         np.broadcast_to(_PUPIL_COLOUR, faces.eye_colour.shape)),
        (_mouth_mask(x, y, faces), faces.mouth_colour),
    ]


def _draw_left_half(faces: FaceParameters, resolution: int) -> np.ndarray:
    """Supersampled left half (plus middle column if odd) of each face; (N, S*R, S*ceil(R/2), 3) float32."""
    samples = _SUPERSAMPLE * resolution
    columns = np.arange(_SUPERSAMPLE * ((resolution + 1) // 2))
    rows = np.arange(samples)
    # Integer numerators make sample coordinates exact mirror images; |x| draws left and right alike.
    x = np.abs((2 * columns + 1 - samples) / samples).astype(np.float32)[None, None, :]
    y = ((2 * rows + 1 - samples) / samples).astype(np.float32)[None, :, None]

    # Each sample keeps the palette index of the topmost shape over it, and one lookup colours them all.
    # Indices below `samples` are the background's own rows, which carry its vertical gradient.
    count = len(faces.labels)
    layer = np.broadcast_to(rows.astype(np.int16)[None, :, None], (count, samples, len(columns))).copy()
    layers = _shape_layers(x, y, faces)
    for offset, (mask, _) in enumerate(layers):
        np.copyto(layer, np.int16(samples + offset), where=mask)
    height = ((y[0, :, 0] + 1.0) / 2.0)[None, :, None]  # (1, S, 1): 0 at the top, 1 at the bottom
    top, bottom = faces.background_top[:, None, :], faces.background_bottom[:, None, :]
    shape_colours = np.stack([colour for _, colour in layers], axis=1)  # (N, shapes, 3)
    palette = np.concatenate([top + (bottom - top) * height, shape_colours], axis=1).astype(np.float32)
    return palette[np.arange(count)[:, None, None], layer]


def _slice_parameters(faces: FaceParameters, start: int, stop: int) -> FaceParameters:
    """The faces start .. stop - 1 of faces."""
    return FaceParameters(**{name: value[start:stop] for name, value in vars(faces).items()})


def _downsample(samples: np.ndarray) -> np.ndarray:
    """Average each block of supersamples into one uint8 pixel; (N, S*H, S*W, 3) -> (N, H, W, 3)."""
    step = _SUPERSAMPLE
    total = sum(samples[:, row::step, column::step] for row in range(step) for column in range(step))
    return np.clip(np.rint(total / step**2), 0, 255).astype(np.uint8)


def render_faces(count: int, resolution: int, seed: int, first_index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images (count, R, R, 3) uint8 and labels (count,) int64 of procedural faces; image k depends only on (seed, first_index + k)."""
    if resolution < 8:
        raise ValueError(f"face resolution must be at least 8 pixels, got {resolution}")
    parameters = face_parameters(count, seed, first_index)
    images = np.empty((count, resolution, resolution, 3), dtype=np.uint8)
    chunk = max(1, _SAMPLES_PER_CHUNK // (_SUPERSAMPLE * resolution) ** 2)
    for start in range(0, count, chunk):
        stop = min(start + chunk, count)
        left = _downsample(_draw_left_half(_slice_parameters(parameters, start, stop), resolution))
        # Copy, not recompute, the right half: symmetry is then exact bit for bit.
        images[start:stop] = np.concatenate([left, left[:, :, : resolution // 2][:, :, ::-1]], axis=2)
    return images, parameters.labels.copy()


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
