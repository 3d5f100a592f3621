"""The one description of a SAGAN architecture, saved in every checkpoint."""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass

RESOLUTIONS = (32, 64, 128)
ATTENTION_VARIANTS = ("paper", "official")
# Upper bounds on what a config may ask for: a file's config decides how much memory its networks take, so a
# hostile one must not be able to ask for gigabytes. Each is far above any published SAGAN/BigGAN (base width 64
# to 128, z 120 to 128, 1,000 classes); raise one here to go beyond.
MAX_CHANNELS = 1024
MAX_Z_DIM = 4096
MAX_CLASSES = 100_000
MAX_IMAGE_CHANNELS = 4  # grey, RGB, RGBA
INTEGER_BOUNDS = {  # field -> (least, most)
    "resolution": (min(RESOLUTIONS), max(RESOLUTIONS)),
    "z_dim": (1, MAX_Z_DIM),
    "g_channels": (1, MAX_CHANNELS),
    "d_channels": (1, MAX_CHANNELS),
    "num_classes": (0, MAX_CLASSES),
    "image_channels": (1, MAX_IMAGE_CHANNELS),
}


class ConfigError(ValueError):
    """A model configuration that cannot describe a network."""


def generator_resolutions(resolution: int) -> tuple[int, ...]:
    """Feature-map sizes that G's blocks output: 8, 16, ..., resolution."""
    sizes, size = [], 8
    while size <= resolution:
        sizes.append(size)
        size *= 2
    return tuple(sizes)


def discriminator_resolutions(resolution: int) -> tuple[int, ...]:
    """Feature-map sizes that D's blocks output: resolution/2, ..., 4."""
    sizes, size = [], resolution // 2
    while size >= 4:
        sizes.append(size)
        size //= 2
    return tuple(sizes)


def _is_integer(value) -> bool:
    # bool is an int subclass, and 32.0 == 32: neither may stand for a layer width.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _attention_sizes(name: str, sizes) -> tuple[int, ...]:
    """sizes (a list from JSON or a tuple) as a sorted tuple of ints; ConfigError for anything else."""
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, (list, tuple)):
        raise ConfigError(f"{name} must be a list of feature sizes, got {sizes!r}")
    if not all(_is_integer(size) for size in sizes):
        raise ConfigError(f"{name} must hold integer feature sizes, got {list(sizes)!r}")
    if len(set(sizes)) != len(sizes):
        raise ConfigError(f"{name} names a feature size twice: {list(sizes)!r}")
    return tuple(sorted(int(size) for size in sizes))


def feature_channels(base_channels: int, resolution: int, feature_size: int) -> int:
    """Width of a feature map: wider where it is coarser, as in SNGAN/BigGAN."""
    return base_channels * min(resolution // feature_size, 16)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild G and D; stored in each checkpoint."""

    resolution: int = 32
    z_dim: int = 128
    g_channels: int = 32
    d_channels: int = 32
    num_classes: int = 0  # 0: unconditional; >0: conditional BN in G, projection D
    g_attention: tuple[int, ...] = (16,)  # feature sizes in G with a self-attention layer
    d_attention: tuple[int, ...] = (16,)
    attention_variant: str = "paper"  # "paper": eq. (1)-(3); "official": pooled keys, h: C -> C/2
    image_channels: int = 3

    def __post_init__(self) -> None:
        # Types first: a float or bool width would reach torch's layers as a TypeError, and int() would
        # quietly turn 16.5 into 16. Tuples from JSON arrive as lists; normalise so configs compare and hash.
        for name in INTEGER_BOUNDS:
            value = getattr(self, name)
            if not _is_integer(value):
                raise ConfigError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
            object.__setattr__(self, name, int(value))
        if not isinstance(self.attention_variant, str):
            raise ConfigError(f"attention_variant must be a string, got {self.attention_variant!r}")
        object.__setattr__(self, "g_attention", _attention_sizes("g_attention", self.g_attention))
        object.__setattr__(self, "d_attention", _attention_sizes("d_attention", self.d_attention))
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first impossible field."""
        for name, (least, most) in INTEGER_BOUNDS.items():
            if name != "resolution" and not least <= getattr(self, name) <= most:
                raise ConfigError(f"{name} must be in {least}..{most}, got {getattr(self, name)}")
        if self.resolution not in RESOLUTIONS:
            raise ConfigError(f"resolution must be one of {RESOLUTIONS}, got {self.resolution}")
        if self.attention_variant not in ATTENTION_VARIANTS:
            raise ConfigError(
                f"attention_variant must be one of {ATTENTION_VARIANTS}, got {self.attention_variant!r}"
            )
        # C/8 query/key channels must be at least 1 at the narrowest attention layer.
        for sizes, allowed, base, net in (
            (self.g_attention, generator_resolutions(self.resolution), self.g_channels, "G"),
            (self.d_attention, discriminator_resolutions(self.resolution), self.d_channels, "D"),
        ):
            for size in sizes:
                if size not in allowed:
                    raise ConfigError(
                        f"{net} has no {size}x{size} feature map at resolution {self.resolution}; "
                        f"attention in {net} can sit at {allowed}"
                    )
                if feature_channels(base, self.resolution, size) < 8:
                    raise ConfigError(f"{net} feature map {size}x{size} has fewer than 8 channels")

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        data = dataclasses.asdict(self)
        data["g_attention"] = list(self.g_attention)
        data["d_attention"] = list(self.d_attention)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Rebuild from to_dict() output; unknown keys are an error, not silently dropped."""
        if not isinstance(data, dict):
            raise ConfigError(f"a model config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model config fields: {unknown}")
        return cls(**data)

    @property
    def conditional(self) -> bool:
        """True when G and D take class labels."""
        return self.num_classes > 0


def default_config(**overrides) -> ModelConfig:
    """A ModelConfig with keyword overrides (a typo raises TypeError)."""
    return dataclasses.replace(ModelConfig(), **overrides)


__all__ = [
    "ATTENTION_VARIANTS",
    "ConfigError",
    "MAX_CHANNELS",
    "MAX_CLASSES",
    "MAX_Z_DIM",
    "ModelConfig",
    "RESOLUTIONS",
    "default_config",
    "discriminator_resolutions",
    "feature_channels",
    "generator_resolutions",
]
