"""BigGAN-deep in pytorch-pretrained-biggan's layout (config.json + pytorch_model.bin), with plain convolutions.

Spectral norm is folded once at load, W = weight_orig / (u^T W_mat v) with the file's u and v (the package's
eval-mode weights). Files are read weights-only and checked against the config before anything is built.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import SelfAttention
from ..checkpoint import CheckpointError
from ..config import ConfigError
from .state_files import all_finite, fold_spectral_norm, read_torch_file

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "pytorch_model.bin"
MAX_CONFIG_BYTES = 1 << 20
MAX_CHANNELS = 65536
BOTTLENECK = 4  # a block's 3x3 convolutions run at in_channels / 4 (BigGAN-deep, appendix B)


@dataclass(frozen=True)
class BigGANDeepConfig:
    """The package's config.json, validated; layers are (up_sample, in_mult, out_mult) of channel_width."""

    output_dim: int
    z_dim: int
    class_embed_dim: int  # recorded only: the package embeds classes to z_dim whatever this says
    channel_width: int
    num_classes: int
    layers: tuple[tuple[bool, int, int], ...]
    attention_layer_position: int  # the attention layer runs before block number attention_layer_position
    eps: float
    n_stats: int  # rows of per-truncation batch-norm statistics, for truncation 0, 1/(n-1), ..., 1

    @property
    def resolution(self) -> int:
        """Side of the generated image."""
        return self.output_dim

    @property
    def attention_resolution(self) -> int:
        """Side of the feature map entering the attention layer."""
        return 4 * 2 ** sum(up for up, _, _ in self.layers[: self.attention_layer_position])

    @property
    def attention_channels(self) -> int:
        """Channels of the feature map entering the attention layer."""
        return self.channel_width * self.layers[self.attention_layer_position][1]

    @property
    def condition_dim(self) -> int:
        """Width of the conditioning vector cat(z, class embedding)."""
        return 2 * self.z_dim

    def to_dict(self) -> dict:
        """The config as config.json spells it."""
        data = asdict(self)
        data["layers"] = [list(layer) for layer in self.layers]
        return data

    @classmethod
    def from_dict(cls, data: object, source: str = "config") -> BigGANDeepConfig:
        """Validate a parsed config.json; ConfigError names source and the field at fault."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        fields = set(cls.__dataclass_fields__)
        unknown, missing = sorted(set(data) - fields, key=str), sorted(fields - set(data))
        if unknown or missing:
            raise ConfigError(f"{source}: unknown fields {unknown}, missing fields {missing}")
        bounds = dict(output_dim=4096, z_dim=4096, class_embed_dim=4096, channel_width=4096, num_classes=100_000)
        values = {name: _integer(data, name, 1, high, source) for name, high in bounds.items()}
        values["n_stats"] = _integer(data, "n_stats", 2, 1000, source)
        values["eps"] = _positive_float(data, "eps", source)
        values["layers"] = _layers(data["layers"], values["channel_width"], source)
        last = len(values["layers"]) - 1
        values["attention_layer_position"] = _integer(data, "attention_layer_position", 0, last, source)
        config = cls(**values)
        _check_geometry(config, source)
        return config


def _integer(data: dict, name: str, low: int, high: int, source: str) -> int:
    value = data[name]
    if type(value) is not int or not low <= value <= high:  # bool and float are refused on purpose
        raise ConfigError(f"{source}: {name} must be an integer in [{low}, {high}], got {value!r}")
    return value


def _positive_float(data: dict, name: str, source: str) -> float:
    value = data[name]
    if type(value) not in (int, float) or not 0 < value < 1:  # also refuses NaN and inf
        raise ConfigError(f"{source}: {name} must be a number in (0, 1), got {value!r}")
    return float(value)


def _layers(value: object, channel_width: int, source: str) -> tuple[tuple[bool, int, int], ...]:
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= 64:
        raise ConfigError(f"{source}: layers must be a list of 1 to 64 [up_sample, in_mult, out_mult]")
    layers = []
    for index, layer in enumerate(value):
        fine = isinstance(layer, (list, tuple)) and len(layer) == 3 and type(layer[0]) is bool
        fine = fine and all(type(m) is int and 1 <= m <= MAX_CHANNELS // channel_width for m in layer[1:])
        if not fine:
            raise ConfigError(f"{source}: layers[{index}] must be [bool, mult, mult], width * mult <= "
                              f"{MAX_CHANNELS}, got {layer!r}")
        layers.append((layer[0], layer[1], layer[2]))
    return tuple(layers)


def _check_geometry(config: BigGANDeepConfig, source: str) -> None:
    """The architecture's own constraints: the package would crash or silently misbehave otherwise."""
    layers, width = config.layers, config.channel_width
    if layers[0][1] != 16 or layers[-1][2] != 1:  # gen_z writes 16 * width channels; the output norm reads width
        raise ConfigError(f"{source}: layers must start at in_mult 16 and end at out_mult 1")
    for index, (_, in_mult, out_mult) in enumerate(layers):
        if index and layers[index - 1][2] != in_mult:
            raise ConfigError(f"{source}: layers[{index}] in_mult {in_mult} != previous out_mult")
        if in_mult != out_mult and in_mult != 2 * out_mult:  # the skip keeps the first half of channels
            raise ConfigError(f"{source}: layers[{index}] must keep or halve its channels")
        if width * in_mult < BOTTLENECK:
            raise ConfigError(f"{source}: layers[{index}] has fewer than {BOTTLENECK} input channels")
    expected = 4 * 2 ** sum(up for up, _, _ in layers)
    if config.output_dim != expected:
        raise ConfigError(f"{source}: output_dim {config.output_dim} != {expected}, what layers produce")
    if config.attention_channels % 8:
        raise ConfigError(f"{source}: attention_layer_position: {config.attention_channels} channels there, "
                          "not a multiple of 8")
    side = config.attention_resolution
    if side < 2 or side % 2:  # keys and values are max-pooled 2x2
        raise ConfigError(f"{source}: attention_layer_position: input side {side} must be even and >= 2")


def find_biggan_deep_files(path: str | Path) -> tuple[Path, Path]:
    """(config_path, weights_path) for a folder, a .bin beside config.json, or NAME-pytorch_model.bin."""
    path = Path(path)
    if path.is_dir():
        config_paths, weights_path = [path / CONFIG_NAME], path / WEIGHTS_NAME
    elif path.suffix == ".bin":
        weights_path, config_paths = path, [path.with_name(CONFIG_NAME)]
        if path.name.endswith("-" + WEIGHTS_NAME):  # the package's names: biggan-deep-128-config.json
            config_paths.insert(0, path.with_name(path.name[: -len(WEIGHTS_NAME)] + CONFIG_NAME))
    else:
        raise CheckpointError(f"{path}: not a folder or a .bin file of pytorch-pretrained-biggan")
    if not weights_path.is_file():
        raise CheckpointError(f"{path}: no {weights_path.name} there")
    for config_path in config_paths:
        if config_path.is_file():
            return config_path, weights_path
    raise CheckpointError(f"{path}: no {' or '.join(p.name for p in config_paths)} beside {weights_path.name}")


def read_biggan_deep_config(config_path: Path) -> BigGANDeepConfig:
    """Parse and validate a config.json; CheckpointError names the file (and the field)."""
    if config_path.stat().st_size > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{config_path}: larger than {MAX_CONFIG_BYTES} bytes, not a BigGAN config")
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
        return BigGANDeepConfig.from_dict(data, source=str(config_path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{config_path}: not a readable JSON config ({error})") from error
    except ConfigError as error:
        raise CheckpointError(str(error)) from error


def read_biggan_deep(path: str | Path) -> tuple[BigGANDeepConfig, dict[str, torch.Tensor]]:
    """(config, folded state dict for BigGANDeepGenerator) from a pytorch-pretrained-biggan checkpoint."""
    config_path, weights_path = find_biggan_deep_files(path)
    config = read_biggan_deep_config(config_path)  # refused here, before the weights are even read
    loaded = read_torch_file(weights_path, mmap=False)
    state = check_reference_state(loaded, config, weights_path)
    return config, {_our_key(key): value for key, value in fold_spectral_norm(state, weights_path).items()}


def reference_shapes(config: BigGANDeepConfig) -> dict[str, tuple[int, ...]]:
    """Every key of the package's BigGAN(config).state_dict() and its shape, computed from the config."""
    width, cond, stats = config.channel_width, config.condition_dim, config.n_stats
    shapes = {"embeddings.weight": (config.z_dim, config.num_classes)}
    shapes.update(_spectral("generator.gen_z", (16 * 16 * width, cond), bias=True))
    for index, (_, in_mult, out_mult) in enumerate(config.layers):
        position = index + (index >= config.attention_layer_position)  # SelfAttn sits in the same list
        prefix = f"generator.layers.{position}"
        for k, (cin, cout, kernel) in enumerate(_bottleneck_convs(width * in_mult, width * out_mult)):
            shapes[f"{prefix}.bn_{k}.running_means"] = shapes[f"{prefix}.bn_{k}.running_vars"] = (stats, cin)
            shapes.update(_spectral(f"{prefix}.bn_{k}.scale", (cin, cond)))
            shapes.update(_spectral(f"{prefix}.bn_{k}.offset", (cin, cond)))
            shapes.update(_spectral(f"{prefix}.conv_{k}", (cout, cin, kernel, kernel), bias=True))
    prefix, channels = f"generator.layers.{config.attention_layer_position}", config.attention_channels
    for name, cout, cin in [("theta", channels // 8, channels), ("phi", channels // 8, channels),
                            ("g", channels // 2, channels), ("o_conv", channels, channels // 2)]:
        shapes.update(_spectral(f"{prefix}.snconv1x1_{name}", (cout, cin, 1, 1)))
    shapes[f"{prefix}.gamma"] = (1,)
    shapes["generator.bn.weight"] = shapes["generator.bn.bias"] = (width,)
    shapes["generator.bn.running_means"] = shapes["generator.bn.running_vars"] = (stats, width)
    shapes.update(_spectral("generator.conv_to_rgb", (width, width, 3, 3), bias=True))
    return shapes


def _bottleneck_convs(in_channels: int, out_channels: int) -> list[tuple[int, int, int]]:
    """(in, out, kernel) of a block's four convolutions: 1x1 down to in/4, two 3x3, 1x1 up to out."""
    middle = in_channels // BOTTLENECK
    return [(in_channels, middle, 1), (middle, middle, 3), (middle, middle, 3), (middle, out_channels, 1)]


def _spectral(prefix: str, weight_shape: tuple[int, ...], bias: bool = False) -> dict[str, tuple[int, ...]]:
    """torch's spectral_norm keys: W_orig, u over output rows, v over the flattened rest."""
    shapes = {f"{prefix}.weight_orig": weight_shape, f"{prefix}.weight_u": weight_shape[:1],
              f"{prefix}.weight_v": (math.prod(weight_shape[1:]),)}
    if bias:
        shapes[f"{prefix}.bias"] = weight_shape[:1]
    return shapes


def check_reference_state(loaded: object, config: BigGANDeepConfig, path: Path) -> dict[str, torch.Tensor]:
    """The file's state dict as float32, after checking keys, shapes and values; else CheckpointError."""
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{path}: holds a {type(loaded).__name__}, not a state dict")
    expected = reference_shapes(config)
    missing = sorted(set(expected) - set(loaded))
    unexpected = sorted(map(repr, set(loaded) - set(expected)))
    if missing or unexpected:
        raise CheckpointError(f"{path}: keys do not match the config: missing {missing[:5]}"
                              f"{' ...' * (len(missing) > 5)}, unexpected {unexpected[:5]}")
    state = {}
    for key, shape in expected.items():
        tensor = loaded[key]
        dense = isinstance(tensor, torch.Tensor) and tensor.layout == torch.strided
        if not dense or not tensor.is_floating_point():
            raise CheckpointError(f"{path}: {key} is not a dense floating-point tensor")
        if tuple(tensor.shape) != shape:
            raise CheckpointError(f"{path}: {key} has shape {tuple(tensor.shape)}, the config implies {shape}")
        tensor = tensor.to(torch.float32).contiguous()
        if not all_finite(tensor):
            raise CheckpointError(f"{path}: {key} holds NaN or infinite values")
        if key.endswith("running_vars") and (tensor < 0).any():
            raise CheckpointError(f"{path}: {key} holds negative variances")
        if key.endswith(("weight_u", "weight_v")) and not tensor.any():
            raise CheckpointError(f"{path}: {key} is all zero, so spectral norm is undefined")
        state[key] = tensor
    return state


def folding_report(config: BigGANDeepConfig) -> str:
    """One line saying how spectral norm was folded at load."""
    count = sum(key.endswith("weight_u") for key in reference_shapes(config))
    return f"spectral norm folded with the stored u, v of {count} layers (the package's eval-mode weights)"


_TOP_LEVEL = {"embeddings": "class_embedding", "generator.gen_z": "input_linear", "generator.layers": "stages",
              "generator.bn": "output_norm", "generator.conv_to_rgb": "output_conv"}
# the package's SelfAttn names -> SelfAttention's: theta is the query g, phi the key f, g the value h
_ATTENTION = {"snconv1x1_theta": "g", "snconv1x1_phi": "f", "snconv1x1_g": "h", "snconv1x1_o_conv": "v"}


def _our_key(key: str) -> str:
    """The package's key -> ours, e.g. generator.layers.3.bn_1.scale.weight -> stages.3.norms.1.scale.weight."""
    for theirs, ours in _TOP_LEVEL.items():
        if key.startswith(theirs + "."):
            key = ours + key[len(theirs):]
            break
    key = re.sub(r"\.bn_(\d)\.", r".norms.\1.", key)
    key = re.sub(r"\.conv_(\d)\.", r".convs.\1.", key)
    return ".".join(_ATTENTION.get(part, part) for part in key.split("."))


def interpolate_statistics(table: torch.Tensor, truncation: float) -> torch.Tensor:
    """The package's statistics for a truncation from its (n_stats, C) table -> (C,), quirks included."""
    # As the package does: with coef, start = modf(t / step), row start gets weight coef and row start+1
    # gets 1 - coef (the reverse of linear interpolation), and t / step in floats decides the rows
    # (0.58 / 0.02 = 28.999..., so t = 0.58 reads nearly row 28).
    coef, start = math.modf(truncation / (1.0 / (table.shape[0] - 1)))
    start = int(start)
    if coef == 0.0:
        return table[start]
    following = table[min(start + 1, table.shape[0] - 1)]  # the package indexes past the end here
    return table[start] * coef + following * (1 - coef)


class TruncationNorm(nn.Module):
    """Batch norm with precomputed statistics per truncation; class-conditional scale and offset or affine."""

    def __init__(self, channels: int, condition_dim: int | None, n_stats: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("running_means", torch.zeros(n_stats, channels))
        self.register_buffer("running_vars", torch.ones(n_stats, channels))
        self.conditional = condition_dim is not None
        if self.conditional:
            self.scale = nn.Linear(condition_dim, channels, bias=False)
            self.offset = nn.Linear(condition_dim, channels, bias=False)
        else:
            self.weight = nn.Parameter(torch.ones(channels))
            self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, truncation: float, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Normalise x (B, C, H, W) with the statistics of this truncation."""
        mean = interpolate_statistics(self.running_means, truncation)  # (C,)
        var = interpolate_statistics(self.running_vars, truncation)
        if not self.conditional:
            return F.batch_norm(x, mean, var, self.weight, self.bias, training=False, momentum=0.0, eps=self.eps)
        weight = 1 + self.scale(condition)[:, :, None, None]  # (B, C, 1, 1)
        bias = self.offset(condition)[:, :, None, None]
        return (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + self.eps) * weight + bias


class BottleneckBlock(nn.Module):
    """BigGAN-deep's residual block: four (norm, relu, conv) with 1x1 ends around two 3x3 at in/4 channels."""

    def __init__(self, in_channels: int, out_channels: int, up_sample: bool, config: BigGANDeepConfig) -> None:
        super().__init__()
        self.up_sample, self.out_channels = up_sample, out_channels
        widths = _bottleneck_convs(in_channels, out_channels)
        self.norms = nn.ModuleList(
            TruncationNorm(cin, config.condition_dim, config.n_stats, config.eps) for cin, _, _ in widths)
        self.convs = nn.ModuleList(nn.Conv2d(cin, cout, k, padding=k // 2) for cin, cout, k in widths)

    def forward(self, x: torch.Tensor, condition: torch.Tensor, truncation: float) -> torch.Tensor:
        """x (B, C_in, H, W) -> (B, C_out, H', W'), H' = 2H when up-sampling."""
        h = x
        for index, (norm, conv) in enumerate(zip(self.norms, self.convs)):
            h = F.relu(norm(h, truncation, condition))
            if index == 1 and self.up_sample:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = conv(h)
        skip = x[:, : self.out_channels]  # dropping channels keeps the first ones, as the package does
        if self.up_sample:
            skip = F.interpolate(skip, scale_factor=2, mode="nearest")
        return h + skip


def check_truncation(truncation: float) -> float:
    """truncation as a float in (0, 1], the range the per-truncation statistics cover; else ValueError."""
    if not 0 < float(truncation) <= 1:  # also refuses NaN
        raise ValueError(f"truncation must be in (0, 1], got {truncation!r}")
    return float(truncation)


class BigGANDeepGenerator(nn.Module):
    """z (B, z_dim), class vector (B, num_classes), truncation -> image (B, 3, R, R) in [-1, 1]."""

    def __init__(self, config: BigGANDeepConfig) -> None:
        super().__init__()
        self.config = config
        width = config.channel_width
        self.class_embedding = nn.Linear(config.num_classes, config.z_dim, bias=False)
        self.input_linear = nn.Linear(config.condition_dim, 4 * 4 * 16 * width)
        stages = []
        for index, (up_sample, in_mult, out_mult) in enumerate(config.layers):
            if index == config.attention_layer_position:
                stages.append(SelfAttention(config.attention_channels, variant="official", spectral=False))
            stages.append(BottleneckBlock(width * in_mult, width * out_mult, up_sample, config))
        self.stages = nn.ModuleList(stages)
        self.output_norm = TruncationNorm(width, None, config.n_stats, config.eps)
        self.output_conv = nn.Conv2d(width, width, 3, padding=1)  # width channels, of which RGB are the first 3

    def forward(self, z: torch.Tensor, class_vector: torch.Tensor, truncation: float) -> torch.Tensor:
        """Generate images; truncation in (0, 1] picks the batch-norm statistics (sample z to match)."""
        truncation = check_truncation(truncation)
        condition = torch.cat((z, self.class_embedding(class_vector)), dim=1)  # (B, 2 z_dim)
        # the weights come from TF, whose gen_z output is laid out (B, 4, 4, C)
        h = self.input_linear(condition).view(-1, 4, 4, 16 * self.config.channel_width)
        h = h.permute(0, 3, 1, 2).contiguous()  # (B, 16 ch, 4, 4)
        for stage in self.stages:
            h = stage(h, condition, truncation) if isinstance(stage, BottleneckBlock) else stage(h)
        h = F.relu(self.output_norm(h, truncation))
        return torch.tanh(self.output_conv(h)[:, :3])

    def attention_layers(self) -> list[tuple[str, SelfAttention]]:
        """[("attn0", layer)]: BigGAN-deep has one attention layer."""
        return [("attn0", self.stages[self.config.attention_layer_position])]


def build_biggan_deep(
    config: BigGANDeepConfig, folded_state_dict: dict[str, torch.Tensor], device: str | torch.device = "cpu"
) -> BigGANDeepGenerator:
    """The generator with folded weights, float32, in eval mode and without gradients."""
    with torch.device("meta"):  # no random initialisation of weights that are replaced at once
        model = BigGANDeepGenerator(config)
    model.load_state_dict(folded_state_dict, strict=True, assign=True)
    return model.requires_grad_(False).to(device=device, dtype=torch.float32).eval()
