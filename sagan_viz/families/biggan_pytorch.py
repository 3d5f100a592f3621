"""ajbrock/BigGAN-PyTorch runs: G_ema.pth, G.pth, D.pth and state_dict.pth in one folder, as utils.save_weights
writes them (with a suffix such as _copy0 or _best1 on every name); a TF Hub conversion's single .pth too."""
from __future__ import annotations

import re
from pathlib import Path

import torch

from ..checkpoint import CheckpointError
from ..latents import normal_latent
from .biggan_deep import class_names
from .biggan_pytorch_layout import (
    FORMAT,
    discriminator_shapes,
    generator_shapes,
    infer_discriminator,
    infer_generator,
    prepare_state,
    read_run_state,
    run_settings,
)
from .biggan_pytorch_networks import BigGANPyTorchDiscriminator, BigGANPyTorchGenerator, GeneratorConfig
from .interface import LoadedModel, ModelSummary, TruncationRange
from .state_files import build, check_state_dict, read_state_dict, state_keys

FAMILY = "biggan-pytorch"
FILE_NAME = re.compile(r"^(G_ema|G|D)(?:_(.+))?\.pth$")  # utils.join_strings('_', ['G', name_suffix]) + '.pth'
# Their truncation is the z variance of sample.py's truncation curves: z_.normal_(0, var), var the std.
TRUNCATION = TruncationRange(default=1.0)


def run_files(path: Path) -> dict[str, Path]:
    """The run's files that exist: 'ema', 'raw', 'D' and 'state' (state_dict.pth), for a folder or one of its files."""
    if path.is_dir():
        folder, suffix = path, None
    else:
        match = FILE_NAME.match(path.name)
        if match is None or (match.group(2) or "").startswith("optim"):
            return {"raw": path}  # e.g. the TF Hub converter's biggan-128.pth: a generator on its own
        folder, suffix = path.parent, match.group(2)
        if match.group(1) == "D":
            raise CheckpointError(f"{path}: looks like {FORMAT}, but it is their discriminator; open "
                                  f"{_name('G_ema', suffix)} or {_name('G', suffix)} beside it")
    names = {"ema": "G_ema", "raw": "G", "D": "D", "state": "state_dict"}
    files = {role: folder / _name(base, suffix) for role, base in names.items()}
    return {role: file for role, file in files.items() if file.is_file()}


def _name(base: str, suffix: str | None) -> str:
    return f"{base}_{suffix}.pth" if suffix else f"{base}.pth"


def _settings(files: dict[str, Path]) -> dict:
    """step, bn_eps, norm_style from state_dict.pth; {} when there is none (a damaged one is an error)."""
    if "state" not in files:
        return {}
    settings = run_settings(read_run_state(files["state"]))
    if settings.get("norm_style", "bn") not in ("bn", "in"):  # 'in' normalises as 'bn' in eval mode
        raise CheckpointError(f"{files['state']}: looks like {FORMAT}, but norm_style {settings['norm_style']!r} "
                              "is not supported (only 'bn' and 'in')")
    return settings


def read_generators(files: dict[str, Path], settings: dict, mmap: bool) -> dict[str, tuple[GeneratorConfig, dict]]:
    """'ema'/'raw' -> (config, checked state with their keys) for the generators present; configs must agree."""
    found = {}
    for role in ("ema", "raw"):
        if role in files:
            state = read_state_dict(files[role], f"{FORMAT} (their generator)", mmap)
            config, num_svs = infer_generator(state, files[role], settings.get("bn_eps", 1e-5))
            mybn = any(key.endswith(".bn.stored_mean") for key in state)
            shapes = generator_shapes(config, num_svs, mybn)
            check_state_dict(state, shapes[0], files[role], f"{FORMAT} (their generator)", shapes[1], values=False)
            found[role] = (config, state, shapes)
    if not found:
        raise CheckpointError(f"{next(iter(files.values()))}: looks like {FORMAT}, but there is no G.pth or G_ema.pth")
    configs = {config for config, _, _ in found.values()}
    if len(configs) > 1:
        raise CheckpointError(f"{files['raw']}: looks like {FORMAT}, but it does not fit {files['ema'].name} beside "
                              "it (another architecture)")
    return found


class BigGANPyTorchModel(LoadedModel):
    """EMA-G ('ema', from G_ema.pth) and G ('raw', G.pth), whichever the run holds, and D when D.pth is there."""

    family = FAMILY

    def __init__(self, path: Path, device: torch.device) -> None:
        files = run_files(path)
        settings = _settings(files)
        generators = {}
        for role, (config, state, shapes) in read_generators(files, settings, mmap=False).items():
            folded = prepare_state(state, shapes, files[role], f"{FORMAT} (their generator)", config.attention)
            generators[role] = build(BigGANPyTorchGenerator(config), folded, device)
        self.weight_choices = tuple(generators)
        self.config, self.files, self.settings = config, files, settings
        discriminator = self._read_discriminator(files["D"], config, device) if "D" in files else None
        super().__init__(path, device, generators, discriminator, resolution=config.resolution, z_dim=config.z_dim,
                         num_classes=config.n_classes, class_names=class_names(config.n_classes),
                         truncation=TRUNCATION, step=settings.get("step"))

    @staticmethod
    def _read_discriminator(path: Path, generator: GeneratorConfig, device: torch.device) -> BigGANPyTorchDiscriminator:
        what = f"{FORMAT} (their discriminator)"
        state = read_state_dict(path, what, mmap=False)
        config, num_svs = infer_discriminator(state, path)
        if (config.resolution, config.n_classes) != (generator.resolution, generator.n_classes):
            raise CheckpointError(f"{path}: looks like {what}, but it is for {config.resolution}px and "
                                  f"{config.n_classes} classes, its generator for {generator.resolution}px and "
                                  f"{generator.n_classes}")
        folded = prepare_state(state, discriminator_shapes(config, num_svs), path, what, config.attention)
        return build(BigGANPyTorchDiscriminator(config), folded, device)

    @property
    def name(self) -> str:
        """Run folder / file name, and step when state_dict.pth says it."""
        folder = self.path if self.path.is_dir() else self.path.parent
        step = "" if self.step is None else f" (step {self.step})"
        return f"{folder.name}{'' if self.path.is_dir() else '/' + self.path.name}{step}"

    def latent(self, seed: int, truncation: float | None) -> torch.Tensor:
        """truncation × z, z ~ N(0, I) named by seed: their z_var (the std of prepare_z_y's normal)."""
        return truncation * normal_latent(seed, self.z_dim)

    def query_shapes(self) -> dict[str, tuple[int, int]]:
        """G's attention layers, then D's, with the side of the map each reads."""
        return _query_shapes(self.config, self.discriminator.config if self.discriminator is not None else None)

    def report(self) -> str:
        """Markdown description of the import."""
        config = self.config
        layers = ", ".join(f"{info.name} ({info.query_shape[0]}×{info.query_shape[1]} queries over "
                           f"{info.key_shape[0]}×{info.key_shape[1]} pooled keys)" for info in self.attention_layers())
        latent = (f"z_dim {config.z_dim} in {len(config.in_channels) + 1} chunks of {config.z_chunk} (hier)"
                  if config.hier else f"z_dim {config.z_dim}")
        classes = (f"shared class embedding of {config.shared_dim}" if config.shared_dim
                   else "per-class batch-norm embeddings (G_shared off)")
        lacks = [text for present, text in ((("ema" in self.generators), "EMA-G (no G_ema.pth)"),
                                            (("raw" in self.generators), "raw G (no G.pth)"),
                                            (self.discriminator is not None, "discriminator (no D.pth)"),
                                            ("state" in self.files, "state_dict.pth (so no step, BN_eps taken as 1e-5)"))
                 if not present] + ["training history (their logs/ are not read)"]
        return (f"**{FAMILY}** (ajbrock/BigGAN-PyTorch, BigGAN.py) {self.resolution}×{self.resolution}, "
                f"{self.num_classes} classes, G_ch {config.channels}, {latent}, {classes}; layers: {layers or 'none'}. "
                "Spectral norm folded into plain weights as their eval forward computes it: one power iteration "
                "from the stored u0 (not written back), W / σ. Batch norm in eval mode with the stored statistics "
                f"(BN_eps {config.bn_eps:g}), as sample.py --G_eval_mode; standing statistics are not accumulated. "
                f"Truncation scales z's standard deviation (their z_var). Not in the files: {', '.join(lacks)}.")


def _query_shapes(generator, discriminator) -> dict[str, tuple[int, int]]:
    shapes = {f"G.attn{index}": (generator.block_side(block),) * 2 for index, block in enumerate(generator.attention)}
    if discriminator is not None:
        shapes.update({f"D.attn{index}": (discriminator.block_side(block),) * 2
                       for index, block in enumerate(discriminator.attention)})
    return shapes


def claims(path: Path) -> bool:
    """A folder with G.pth or G_ema.pth; G*.pth / D*.pth by name; or a .pth whose keys have their u0 / blocks layout."""
    if path.is_dir():
        return (path / "G_ema.pth").is_file() or (path / "G.pth").is_file()
    if not path.is_file() or path.suffix not in (".pth", ".pt"):
        return False
    match = FILE_NAME.match(path.name)
    if match and not (match.group(2) or "").startswith("optim"):
        return True
    keys = state_keys(path)
    return any(key.endswith(".u0") for key in keys) or "blocks.0.0.conv1.weight" in keys


def summarise(path: Path) -> ModelSummary:
    """From key names and shapes (memory-mapped, no tensor data read) and state_dict.pth."""
    files = run_files(path)
    settings = _settings(files)
    found = read_generators(files, settings, mmap=True)
    config = next(iter(found.values()))[0]
    discriminator = None
    if "D" in files:
        discriminator, _ = infer_discriminator(read_state_dict(files["D"], FORMAT, mmap=True), files["D"])
    folder = path if path.is_dir() else path.parent
    return ModelSummary(path=path, family=FAMILY, run=folder.name, step=settings.get("step"),
                        layers=tuple(_query_shapes(config, discriminator)), resolution=config.resolution,
                        num_classes=config.n_classes, class_names=class_names(config.n_classes), truncation=TRUNCATION,
                        weight_choices=tuple(found))


def open_model(path: Path, device: torch.device) -> BigGANPyTorchModel:
    """Read, validate, fold spectral norm and build G_ema, G and D (CheckpointError on a bad file)."""
    return BigGANPyTorchModel(path, device)


__all__ = ["FAMILY", "BigGANPyTorchModel", "claims", "open_model", "run_files", "summarise"]
