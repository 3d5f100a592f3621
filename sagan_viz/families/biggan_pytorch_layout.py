"""BigGAN-PyTorch's files: configs read off the weights' shapes, every expected key, spectral norm folded,
and the step and a few settings from state_dict.pth, which pickles nn.ReLU and so is never fully unpickled.

Their layers.SN keeps u0 (1, out) (u1, ... with num_svs > 1, used only for logging, as sv0, sv1 are) and in
eval mode still runs one power iteration from u0 without storing it: v = normalize(u0 W), u = normalize(v W^T),
sigma = v W^T u^T, W_mat = weight.view(out, -1). That sigma is folded: W / sigma is what every eval-mode forward
of theirs uses (more iterations in eval repeat the same one, as u0 is never updated there).
"""
from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F

from ..checkpoint import CheckpointError
from .biggan_pytorch_networks import D_ARCH, G_ARCH, DiscriminatorConfig, GeneratorConfig
from .state_files import check_state_dict

FORMAT = "a BigGAN-PyTorch (ajbrock) state dict"
MAX_CHANNELS = 4096
MAX_CLASSES = 100_000
MAX_STATE_FILE_BYTES = 1 << 20  # state_dict.pth holds counters and the config: a few kB
SN_EPS = 1e-12  # F.normalize's floor in their power iteration; 1e-6..1e-12 in their configs, moot for real weights
G_RESOLUTIONS = {len(G_ARCH[side][0]): side for side in G_ARCH}  # number of blocks -> resolution
D_RESOLUTIONS = {len(D_ARCH[side][1]): side for side in D_ARCH}
_ATTENTION_NAMES = {"theta": "g", "phi": "f", "g": "h", "o": "v"}  # theirs -> SelfAttention's: theta is the query


def _fail(path: Path, what: str, problem: str) -> CheckpointError:
    return CheckpointError(f"{path}: looks like {what}, but {problem}")


def _blocks(state: dict[str, torch.Tensor]) -> int:
    """How many residual blocks the keys name (blocks.i.0.conv1.weight)."""
    indices = {int(match.group(1)) for key in state if (match := re.match(r"blocks\.(\d+)\.0\.conv1\.weight$", key))}
    return max(indices) + 1 if indices and indices == set(range(max(indices) + 1)) else 0


def _attention_blocks(state: dict[str, torch.Tensor]) -> tuple[int, ...]:
    """Indices of the blocks followed by an attention layer (any blocks.i.1.* key)."""
    return tuple(sorted({int(match.group(1)) for key in state if (match := re.match(r"blocks\.(\d+)\.1\.", key))}))


def _count_svs(state: dict[str, torch.Tensor], prefix: str) -> int:
    return next(count for count in range(100) if f"{prefix}.u{count}" not in state)


def infer_generator(state: dict[str, torch.Tensor], path: Path, bn_eps: float = 1e-5) -> tuple[GeneratorConfig, int]:
    """(config, num_svs) of their Generator from key names and shapes; CheckpointError when they do not fit."""
    what = f"{FORMAT} (their generator)"
    if "blocks.0.0.conv3.weight" in state:
        raise _fail(path, what, "its blocks have conv3/conv4: BigGANdeep.py's generator, which is not supported")
    if any(key.endswith(".bn.running_mean") for key in state):
        raise _fail(path, what, "it uses cross_replica batch norm, whose eval forward adds its gain instead of "
                    "scaling by it; not supported")
    count = _blocks(state)
    if count not in G_RESOLUTIONS or "linear.weight" not in state or state["linear.weight"].dim() != 2:
        raise _fail(path, what, f"it has {count} generator blocks and linear.weight {_shape(state, 'linear.weight')}; "
                    f"their G_arch has {sorted(G_RESOLUTIONS)} blocks")
    resolution = G_RESOLUTIONS[count]
    last = state[f"blocks.{count - 1}.0.conv2.weight"]
    channels = last.shape[0] // G_ARCH[resolution][1][-1]
    shared = state.get("shared.weight")
    gain = state.get("blocks.0.0.bn1.gain.weight")
    if gain is None or gain.dim() != 2 or (shared is not None and shared.dim() != 2):
        raise _fail(path, what, "blocks.0.0.bn1.gain.weight or shared.weight is missing or not a matrix")
    z_chunk = state["linear.weight"].shape[1]
    if shared is None:  # G_shared off: the gains are nn.Embedding(n_classes, C); y is the class index
        n_classes, shared_dim, hier = gain.shape[0], 0, False
    else:
        n_classes, shared_dim = shared.shape
        hier = gain.shape[1] == shared_dim + z_chunk
        if not hier and gain.shape[1] != shared_dim:
            raise _fail(path, what, f"bn gains read {gain.shape[1]} values, neither shared_dim {shared_dim} nor "
                        f"shared_dim + z chunk {shared_dim + z_chunk}")
    if not (1 <= channels <= MAX_CHANNELS and 1 <= z_chunk <= MAX_CHANNELS and 1 <= n_classes <= MAX_CLASSES
            and shared_dim <= MAX_CHANNELS):
        raise _fail(path, what, f"G_ch {channels}, z {z_chunk}, {n_classes} classes or shared_dim {shared_dim} is "
                    "out of range")
    config = GeneratorConfig(resolution, channels, z_chunk, n_classes, shared_dim, hier, _attention_blocks(state),
                             bn_eps)
    if any(config.out_channels[index] < 8 for index in config.attention):
        raise _fail(path, what, "an attention layer has fewer than 8 channels")
    return config, _count_svs(state, "linear")


def infer_discriminator(state: dict[str, torch.Tensor], path: Path) -> tuple[DiscriminatorConfig, int]:
    """(config, num_svs) of their Discriminator from key names and shapes."""
    what = f"{FORMAT} (their discriminator)"
    count = _blocks(state)
    embed = state.get("embed.weight")
    if count not in D_RESOLUTIONS or embed is None or embed.dim() != 2:
        raise _fail(path, what, f"it has {count} blocks and embed.weight {_shape(state, 'embed.weight')}; their "
                    f"D_arch has {sorted(D_RESOLUTIONS)} blocks and a class embedding")
    resolution = D_RESOLUTIONS[count]
    first = state["blocks.0.0.conv1.weight"]
    channels = state["blocks.0.0.conv2.weight"].shape[0] // D_ARCH[resolution][1][0]
    if not (1 <= channels <= MAX_CHANNELS and 1 <= embed.shape[0] <= MAX_CLASSES):
        raise _fail(path, what, f"D_ch {channels} or {embed.shape[0]} classes is out of range")
    wide = first.shape[0] == channels * D_ARCH[resolution][1][0]  # block 0's hidden width: its output's, or 3
    config = DiscriminatorConfig(resolution, channels, wide, embed.shape[0], _attention_blocks(state))
    if any(config.out_channels[index] < 8 for index in config.attention):
        raise _fail(path, what, "an attention layer has fewer than 8 channels")
    return config, max(_count_svs(state, "linear"), 1)


def _shape(state: dict[str, torch.Tensor], key: str) -> str:
    return str(tuple(state[key].shape)) if key in state else "missing"


def _spectral(shapes: dict, optional: dict, prefix: str, weight: tuple[int, ...], num_svs: int, bias: bool = True,
              sn_outputs: int | None = None) -> None:
    """Their SNConv2d/SNLinear/SNEmbedding keys: weight, bias, u_i (1, outputs) and the sv_i logs (optional)."""
    shapes[f"{prefix}.weight"] = weight
    if bias:
        shapes[f"{prefix}.bias"] = weight[:1]
    for index in range(num_svs):
        shapes[f"{prefix}.u{index}"] = (1, sn_outputs or weight[0])
        optional[f"{prefix}.sv{index}"] = (1,)  # the TF Hub converter's files have none


def _attention(shapes: dict, optional: dict, prefix: str, channels: int, num_svs: int) -> None:
    for name, (cout, cin) in {"theta": (channels // 8, channels), "phi": (channels // 8, channels),
                              "g": (channels // 2, channels), "o": (channels, channels // 2)}.items():
        _spectral(shapes, optional, f"{prefix}.{name}", (cout, cin, 1, 1), num_svs, bias=False)
    shapes[f"{prefix}.gamma"] = ()


def _norm_statistics(shapes: dict, prefix: str, channels: int, mybn: bool) -> None:
    if mybn:  # layers.myBN: the statistics one level down, with its standing-stats counter
        prefix += ".bn"
        shapes[f"{prefix}.accumulation_counter"] = (1,)
    shapes[f"{prefix}.stored_mean"] = shapes[f"{prefix}.stored_var"] = (channels,)


def generator_shapes(config: GeneratorConfig, num_svs: int, mybn: bool) -> tuple[dict, dict]:
    """(required, optional) keys of their Generator(**config).state_dict() with shapes; num_svs 0: G_param not SN."""
    shapes, optional = {}, {}
    if config.shared_dim:
        shapes["shared.weight"] = (config.n_classes, config.shared_dim)
    _spectral(shapes, optional, "linear", (config.in_channels[0] * 16, config.z_chunk), num_svs)
    for index, (cin, cout) in enumerate(zip(config.in_channels, config.out_channels)):
        prefix = f"blocks.{index}.0"
        for name, weight in (("conv1", (cout, cin, 3, 3)), ("conv2", (cout, cout, 3, 3)), ("conv_sc", (cout, cin, 1, 1))):
            _spectral(shapes, optional, f"{prefix}.{name}", weight, num_svs)
        for norm, channels in (("bn1", cin), ("bn2", cout)):
            _norm_statistics(shapes, f"{prefix}.{norm}", channels, mybn)
            for part in ("gain", "bias"):
                if config.shared_dim:
                    _spectral(shapes, optional, f"{prefix}.{norm}.{part}", (channels, config.condition_dim), num_svs,
                              bias=False)
                else:
                    shapes[f"{prefix}.{norm}.{part}.weight"] = (config.n_classes, channels)
        if index in config.attention:
            _attention(shapes, optional, f"blocks.{index}.1", cout, num_svs)
    width = config.out_channels[-1]
    shapes["output_layer.0.gain"] = shapes["output_layer.0.bias"] = (width,)
    _norm_statistics(shapes, "output_layer.0", width, mybn)
    _spectral(shapes, optional, "output_layer.2", (3, width, 3, 3), num_svs)
    return shapes, optional


def discriminator_shapes(config: DiscriminatorConfig, num_svs: int) -> tuple[dict, dict]:
    """(required, optional) keys of their Discriminator(**config).state_dict() with shapes."""
    shapes, optional = {}, {}
    for index, (cin, cout, down) in enumerate(zip(config.in_channels, config.out_channels, config.downsample)):
        hidden = cout if config.wide else cin
        _spectral(shapes, optional, f"blocks.{index}.0.conv1", (hidden, cin, 3, 3), num_svs)
        _spectral(shapes, optional, f"blocks.{index}.0.conv2", (cout, hidden, 3, 3), num_svs)
        if cin != cout or down:
            _spectral(shapes, optional, f"blocks.{index}.0.conv_sc", (cout, cin, 1, 1), num_svs)
        if index in config.attention:
            _attention(shapes, optional, f"blocks.{index}.1", cout, num_svs)
    _spectral(shapes, optional, "linear", (1, config.out_channels[-1]), num_svs)
    _spectral(shapes, optional, "embed", (config.n_classes, config.out_channels[-1]), num_svs, bias=False)
    return shapes, optional


def eval_sigma(weight: torch.Tensor, u: torch.Tensor, eps: float = SN_EPS) -> torch.Tensor:
    """layers.power_iteration(W_mat, [u0], update=False)'s first singular value: the one their eval forward divides by."""
    matrix = weight.reshape(weight.shape[0], -1)
    v = F.normalize(u @ matrix, eps=eps)  # (1, in)
    u = F.normalize(v @ matrix.t(), eps=eps)  # (1, out)
    return ((v @ matrix.t()) @ u.t()).squeeze()


def prepare_state(state: dict[str, torch.Tensor], shapes: tuple[dict, dict], path: Path, what: str,
                  attention: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Checked, spectral norm folded and renamed to our networks' keys."""
    checked = check_state_dict(state, shapes[0], path, what, optional=shapes[1])
    folded = {}
    for key, tensor in checked.items():
        if re.search(r"\.(u|sv)\d+$", key) or key.endswith("accumulation_counter"):
            continue
        prefix = key.removesuffix("weight")
        if key.endswith("weight") and prefix + "u0" in checked:
            sigma = eval_sigma(tensor, checked[prefix + "u0"])
            if not torch.isfinite(sigma) or sigma <= 0:
                raise _fail(path, what, f"{prefix}u0 gives sigma {sigma.item():.3g} for this weight")
            tensor = tensor / sigma
        folded[_our_key(key, attention)] = tensor.reshape(1) if key.endswith("gamma") else tensor
    return folded


def _our_key(key: str, attention: tuple[int, ...]) -> str:
    """blocks.2.0.conv1.weight -> blocks.2.conv1.weight; blocks.2.1.theta.weight -> attention.2.g.weight."""
    key = key.replace(".bn.stored_", ".stored_")  # myBN's statistics one level up
    key = key.replace("output_layer.0.", "output_norm.").replace("output_layer.2.", "output_conv.")
    match = re.match(r"blocks\.(\d+)\.(\d)\.(.*)$", key)
    if match is None:
        return key
    block, position, rest = match.groups()
    if position == "0":
        return f"blocks.{block}.{rest}"
    name, _, tail = rest.partition(".")
    return f"attention.{block}.{_ATTENTION_NAMES.get(name, name)}{'.' if tail else ''}{tail}"


class _Opaque:
    """Stands in for every class a state_dict.pth names (nn.ReLU, numpy scalars, sets): nothing is imported."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        pass

    def __setitem__(self, key, value) -> None:
        pass

    def append(self, value) -> None:
        pass

    def extend(self, values) -> None:
        pass


class _InertUnpickler(pickle.Unpickler):
    """Plain values (dicts, lists, strings, numbers) come out; every class becomes an inert _Opaque."""

    def find_class(self, module: str, name: str):
        return _Opaque

    def persistent_load(self, pid):
        return None  # tensor storages are not read


def read_run_state(path: Path) -> dict:
    """utils.save_weights' state_dict.pth: {'itr', 'epoch', ..., 'config': {...}} with plain values only.

    Neither zip nor legacy format is handed to torch.load: its config pickles nn.ReLU (and, from 2019's
    torch, the module's backend), which weights-only loading refuses and full unpickling would execute.
    """
    what = "BigGAN-PyTorch's state_dict.pth"
    if path.stat().st_size > MAX_STATE_FILE_BYTES:
        raise CheckpointError(f"{path}: looks like {what}, but it is larger than {MAX_STATE_FILE_BYTES} bytes")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next(name for name in archive.namelist() if name.endswith("data.pkl"))
                value = _InertUnpickler(archive.open(name)).load()
        else:  # torch < 1.6: magic number, protocol, system info, then the object
            with open(path, "rb") as stream:
                unpickler = _InertUnpickler(stream)
                *_, value = (unpickler.load() for _ in range(4))
    except Exception as error:  # a damaged file says what kind of damage, and is then ignored by the caller
        raise CheckpointError(f"{path}: looks like {what}, but it is not readable ({type(error).__name__}: "
                              f"{str(error)[:200]})") from None
    if not isinstance(value, dict) or not isinstance(value.get("config", {}), dict):
        raise CheckpointError(f"{path}: looks like {what}, but it holds a {type(value).__name__}, not their dict")
    return value


def run_settings(run_state: dict) -> dict:
    """What the weights cannot say, where the file says it plainly: step (itr), BN_eps, norm_style."""
    config = run_state.get("config", {})
    settings = {"step": run_state.get("itr"), "bn_eps": config.get("BN_eps"), "norm_style": config.get("norm_style")}
    kinds = {"step": int, "bn_eps": (int, float), "norm_style": str}
    return {key: value for key, value in settings.items()
            if isinstance(value, kinds[key]) and not isinstance(value, bool)
            and not (key == "bn_eps" and not 0 < value < 1) and not (key == "step" and value < 0)}

