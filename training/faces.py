"""The built-in data set: procedural cartoon faces, exactly mirror-symmetric, two eyes of one random colour.

Made to score long-range structure exactly (see sagan_viz.metrics); rendered in vectorised NumPy, no download.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sagan_viz.imaging import luma

FACE_CLASSES = ("smile", "neutral", "open")  # labels of the procedural faces (mouth shape)
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
    dark_skin = luma(skin_colour) < 140.0
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
