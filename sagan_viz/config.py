"""The one description of a SAGAN architecture, saved in every checkpoint."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

RESOLUTIONS = (32, 64, 128)
ATTENTION_VARIANTS = ("paper", "official")


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
        # Tuples from JSON arrive as lists; normalise so configs compare and hash.
        object.__setattr__(self, "g_attention", tuple(sorted(int(s) for s in self.g_attention)))
        object.__setattr__(self, "d_attention", tuple(sorted(int(s) for s in self.d_attention)))
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first impossible field."""
        if self.resolution not in RESOLUTIONS:
            raise ConfigError(f"resolution must be one of {RESOLUTIONS}, got {self.resolution}")
        if self.attention_variant not in ATTENTION_VARIANTS:
            raise ConfigError(
                f"attention_variant must be one of {ATTENTION_VARIANTS}, got {self.attention_variant!r}"
            )
        for name in ("z_dim", "g_channels", "d_channels", "image_channels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.num_classes < 0:
            raise ConfigError(f"num_classes must be >= 0, got {self.num_classes}")
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
    def from_dict(cls, data: dict) -> "ModelConfig":
        """Rebuild from to_dict() output; unknown keys are an error, not silently dropped."""
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
    "ModelConfig",
    "RESOLUTIONS",
    "default_config",
    "discriminator_resolutions",
    "feature_channels",
    "generator_resolutions",
]
