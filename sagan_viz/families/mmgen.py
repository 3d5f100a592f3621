"""open-mmlab/mmgeneration SAGAN checkpoints (and SNGAN-Proj): one .pth from mmcv's save_checkpoint.

The file holds {"meta": {"config": <the run's config as Python text>, "iter": …, …}, "state_dict":
{"generator.…", "generator_ema.…" (when the run kept an EMA), "discriminator.…"}} (BasiccGAN's modules).
The architecture comes from the shapes; the config text, parsed as literals (never executed), supplies BN eps,
the cBN gain convention, in-place ReLU in D and D's down-sampling, with mmgen's defaults where it is absent.
"""
from __future__ import annotations

import ast
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import CheckpointError
from .biggan_deep import class_names
from .interface import LoadedModel, ModelSummary
from .mmgen_networks import (
    DiscriminatorConfig,
    GeneratorConfig,
    MMGenDiscriminator,
    MMGenGenerator,
    Settings,
    build,
    discriminator_config,
    generator_config,
    our_key,
    refuse,
)
from .state_files import check_state_values, fold_spectral_norm, read_torch_file, tensor_dict

FAMILY = "mmgen"
NETWORKS = {"generator_ema": "ema", "generator": "raw"}  # BasiccGAN's modules -> weight choices, EMA first
MAX_CONFIG_CHARS = 1 << 20
SUFFIXES = (".pth", ".pt")


def read_mmgen_file(path: Path) -> tuple[dict, dict[str, dict[str, torch.Tensor]]]:
    """(meta, {"generator": state, "generator_ema": state, "discriminator": state}), memory-mapped, mmgen's names."""
    try:
        loaded = read_torch_file(path)
    except CheckpointError as error:  # truncated, not a zip or pickle, or a pickle that would run code
        raise refuse(path, "it is " + str(error).removeprefix(f"{path}: ")) from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("state_dict"), dict):
        raise refuse(path, "it holds no 'state_dict' dictionary")
    meta = loaded.get("meta") if isinstance(loaded.get("meta"), dict) else {}
    try:
        state = tensor_dict(loaded["state_dict"], path, "its 'state_dict'")
    except CheckpointError as error:
        raise refuse(path, str(error).removeprefix(f"{path}: ")) from None
    networks: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        network, _, rest = key.partition(".")
        if network in ("generator", "generator_ema", "discriminator"):
            networks.setdefault(network, {})[rest] = tensor
    if "generator" not in networks and "generator_ema" not in networks:
        raise refuse(path, "its state_dict has no generator.* or generator_ema.* weights")
    return meta, networks


def _literal(node: ast.AST):
    """A config value from the syntax tree: dict(...), {...}, lists, tuples, constants; anything else is None."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return -node.operand.value if isinstance(node.operand.value, (int, float)) else None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {keyword.arg: _literal(keyword.value) for keyword in node.keywords if keyword.arg}
    if isinstance(node, ast.Dict):
        return {_literal(key): _literal(value) for key, value in zip(node.keys, node.values) if key is not None}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(element) for element in node.elts]
    return None


def config_model(meta: dict) -> dict | None:
    """The `model = dict(...)` of meta["config"], parsed without running it; None when absent or unreadable."""
    text = meta.get("config")
    if not isinstance(text, str) or len(text) > MAX_CONFIG_CHARS:
        return None
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and [getattr(t, "id", None) for t in statement.targets] == ["model"]:
            model = _literal(statement.value)
            return model if isinstance(model, dict) else None
    return None


def read_settings(meta: dict, scale: int, path: Path) -> Settings:
    """What the config decides beyond shapes (mmgen's defaults without one); CheckpointError for what we cannot run."""
    model = config_model(meta)
    if model is None:
        return Settings()
    generator = model.get("generator") if isinstance(model.get("generator"), dict) else {}
    discriminator = model.get("discriminator") if isinstance(model.get("discriminator"), dict) else {}
    for name, network in (("generator", generator), ("discriminator", discriminator)):
        activation = network.get("act_cfg") or {"type": "ReLU"}
        if not isinstance(activation, dict) or activation.get("type") != "ReLU":
            raise refuse(path, f"its {name} uses act_cfg {activation}; only ReLU is supported")
        if network.get("sn_style", "torch") != "torch":
            raise refuse(path, f"its {name} uses {network.get('sn_style')!r} spectral norm; only 'torch' is supported")
    eps = generator.get("norm_eps", 1e-4)
    init = generator.get("init_cfg") or {"type": "BigGAN"}
    init_type = init.get("type", "BigGAN") if isinstance(init, dict) else "BigGAN"
    downsample = discriminator.get("downsample_cfg")
    if isinstance(downsample, dict):
        downsample = downsample.get(scale)
    if not isinstance(eps, (int, float)) or not 0 < eps < 1 or not isinstance(init_type, str) or not (
            downsample is None or isinstance(downsample, list) and all(isinstance(d, bool) for d in downsample)):
        raise refuse(path, f"its meta config has norm_eps {eps!r}, init_cfg {init!r} or downsample_cfg "
                           f"{downsample!r} of a kind mmgen would not build")
    activation = discriminator.get("act_cfg") or {}
    return Settings(norm_eps=float(eps), reweight_embedding=init_type.upper() in ("BIGGAN", "STUDIO"),
                    discriminator_inplace_relu=bool(activation.get("inplace", False)),
                    discriminator_downsample=None if downsample is None else tuple(downsample), from_config=True)


def fold(state: dict[str, torch.Tensor], path: Path, network: str) -> dict[str, torch.Tensor]:
    """Checked float32 weights, spectral norm folded with the stored u, v (mmgen's eval mode)."""
    if any(key.endswith((".u0", ".sv0")) for key in state):
        raise refuse(path, f"its {network} has ajbrock-style spectral norm (u0, sv0), which is not supported")
    checked = check_state_values(state, lambda reason: refuse(path, f"{network}.{reason}"))
    try:
        folded = fold_spectral_norm(checked, path)
    except CheckpointError as error:
        raise refuse(path, f"{network}: " + str(error).removeprefix(f"{path}: ")) from None
    return {key: tensor.reshape(1) if key.endswith(".gamma") and tensor.dim() == 0 else tensor  # () -> (1,)
            for key, tensor in folded.items()}


def shapes_of(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """Key -> shape with our names, spectral-norm triples named as their folded weight."""
    return {our_key(key.removesuffix("_orig")): tuple(t.shape) for key, t in state.items()
            if not key.endswith(("weight_u", "weight_v"))}


def read_configs(meta: dict, networks: dict, path: Path) -> tuple[GeneratorConfig, DiscriminatorConfig | None,
                                                                    Settings]:
    """The architectures and settings, from shapes and meta alone (nothing folded or built yet)."""
    configs = {name: generator_config(shapes_of(networks[name]), path) for name in NETWORKS if name in networks}
    generator, *others = configs.values()
    if any(other != generator for other in others):
        raise refuse(path, "generator and generator_ema have different architectures")
    settings = read_settings(meta, generator.resolution, path)
    if "discriminator" not in networks:
        return generator, None, settings
    discriminator = discriminator_config(shapes_of(networks["discriminator"]), generator.resolution, settings, path)
    if discriminator.num_classes not in (0, generator.num_classes):
        raise refuse(path, f"its discriminator has {discriminator.num_classes} classes, its generator "
                           f"{generator.num_classes}")
    return generator, discriminator, settings


def query_shapes(generator: GeneratorConfig, discriminator: DiscriminatorConfig | None) -> dict[str, tuple[int, int]]:
    """Layer name -> (H, W) of the map it reads, G's first."""
    shapes = {f"G.attn{index}": (side, side) for index, side in enumerate(generator.attention_sides())}
    if discriminator is not None:
        shapes.update({f"D.attn{index}": (side, side) for index, side in enumerate(discriminator.attention_sides())})
    return shapes


def iteration_of(meta: dict) -> int | None:
    """meta["iter"]: mmgen's iteration count (it counts discriminator steps too)."""
    value = meta.get("iter")
    return value if type(value) is int and value >= 0 else None


class MMGenModel(LoadedModel):
    """An mmgeneration SAGAN: generator_ema ('ema') and/or generator ('raw'), and the discriminator."""

    family = FAMILY

    def __init__(self, path: Path, device: torch.device) -> None:
        meta, networks = read_mmgen_file(path)  # memory-mapped: an optimizer state is never read; weights are copied
        generator_config, discriminator_config, settings = read_configs(meta, networks, path)  # before building
        generators: dict[str, nn.Module] = {}
        for name, choice in NETWORKS.items():
            if name in networks:
                folded = {our_key(key): tensor for key, tensor in fold(networks[name], path, name).items()}
                generators[choice] = build(lambda: MMGenGenerator(generator_config, settings), folded, path, name,
                                           device)
        discriminator = None
        if discriminator_config is not None:
            folded = {our_key(key): t for key, t in fold(networks["discriminator"], path, "discriminator").items()}
            discriminator = build(lambda: MMGenDiscriminator(discriminator_config, settings), folded, path,
                                  "discriminator", device)
        self.weight_choices = tuple(choice for name, choice in NETWORKS.items() if name in networks)
        super().__init__(path, device, generators, discriminator, resolution=generator_config.resolution,
                         z_dim=generator_config.noise_size, num_classes=generator_config.num_classes,
                         class_names=class_names(generator_config.num_classes), step=iteration_of(meta))
        self.config, self.discriminator_config, self.settings = generator_config, discriminator_config, settings
        self.experiment = meta.get("exp_name") if isinstance(meta.get("exp_name"), str) else None

    def query_shapes(self) -> dict[str, tuple[int, int]]:
        """From the architecture the shapes describe."""
        return query_shapes(self.config, self.discriminator_config)

    def report(self) -> str:
        """Markdown: what was imported, from where its settings came, and what the file lacks."""
        layers = self.layers_text()
        classes = f"{self.num_classes} classes" if self.conditional else "unconditional"
        present = {"generator_ema": "ema" in self.generators, "generator": "raw" in self.generators,
                   "discriminator": self.discriminator is not None}
        held = ", ".join(name for name, here in present.items() if here)
        lacks = "".join(f", no {name}" for name, here in present.items() if not here)
        settings = self.settings
        source = "read from the file's meta config" if settings.from_config else (
            "mmgen's defaults (the file has no readable meta config)")
        step = f"iteration {self.step} (mmgen counts discriminator steps)" if self.step is not None else "no iteration"
        name = f" `{self.experiment}`" if self.experiment else ""
        return (f"**{FAMILY}** SAGAN / SNGAN-Proj checkpoint{name}, {step}: {self.resolution}×{self.resolution}, "
                f"{classes}, noise of {self.z_dim}; layers: {layers or 'none'}. Holds {held}{lacks}, no training "
                "history. Spectral norm (torch's) folded with the stored u, v, as mmgen computes it in eval mode. "
                f"Settings {source}: BN eps {settings.norm_eps:g}, cBN gain "
                f"{'1 + embedding' if settings.reweight_embedding else 'embedding'}, in-place ReLU in D "
                f"{'yes' if settings.discriminator_inplace_relu else 'no'}.")


def claims(path: Path) -> bool:
    """A .pth/.pt whose dict has 'meta' and a 'state_dict' with generator.* keys (read memory-mapped)."""
    if not path.is_file() or path.suffix not in SUFFIXES:
        return False
    try:
        loaded = read_torch_file(path)
    except CheckpointError:
        return False
    state = loaded.get("state_dict") if isinstance(loaded, dict) and isinstance(loaded.get("meta"), dict) else None
    return isinstance(state, dict) and any(isinstance(key, str) and key.startswith(("generator.", "generator_ema."))
                                           for key in state)


def summarise(path: Path) -> ModelSummary:
    """From the meta and the shapes (memory-mapped; CheckpointError on a bad file)."""
    meta, networks = read_mmgen_file(path)
    generator, discriminator, _ = read_configs(meta, networks, path)
    return ModelSummary(path=path, family=FAMILY, run=path.parent.name, step=iteration_of(meta),
                        layers=tuple(query_shapes(generator, discriminator)), resolution=generator.resolution,
                        num_classes=generator.num_classes, class_names=class_names(generator.num_classes),
                        weight_choices=tuple(choice for name, choice in NETWORKS.items() if name in networks))


def open_model(path: Path, device: torch.device) -> MMGenModel:
    """Read, validate, fold spectral norm and build (CheckpointError on a bad file)."""
    return MMGenModel(path, device)


__all__ = ["FAMILY", "MMGenModel", "claims", "config_model", "open_model", "read_settings", "summarise"]
