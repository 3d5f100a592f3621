"""PyTorch-StudioGAN checkpoints: a run's model=G-…, model=G_ema-… and model=D-… files (SAGAN and BigGAN).

Each file holds {"state_dict": …} (G: and "optimizer"; D: and "seed", "run_name", "step", "best_fid", …).
Opening any one of them opens the run's set with the same best/current and step: G_ema as "ema", G as "raw",
D when it sits beside them. The architecture comes from the shapes; no config travels with the files.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import CheckpointError
from .biggan_deep import class_names
from .interface import LoadedModel, ModelSummary
from .studiogan_layout import (
    DiscriminatorConfig,
    GeneratorConfig,
    discriminator_config,
    fold_as_studiogan_samples,
    generator_config,
    read_studiogan_file,
    refuse,
    weight_shapes,
)
from .studiogan_networks import StudioGANDiscriminator, StudioGANGenerator, build

FAMILY = "studiogan"
FILE_NAME = re.compile(r"^model=(G|G_ema|D)-(best|current)-weights-step=(\d+)\.pth$")  # utils/misc.py save_model
WEIGHTS = {"G_ema": "ema", "G": "raw"}  # StudioGAN's file names -> this project's weight choices, EMA first
WHAT = {"G": "generator", "G_ema": "EMA generator", "D": "discriminator"}
BACKBONES = {"resnet": "SAGAN-style (resnet backbone)", "big_resnet": "BigGAN (big_resnet backbone)"}


@dataclass(frozen=True)
class RunFiles:
    """The files of one StudioGAN save: model name ("G", "G_ema", "D") -> path, for one best/current and step."""

    files: dict[str, Path]
    when: str  # "best" or "current"
    step: int

    @property
    def primary(self) -> Path:
        """The file that stands for the save in lists: model=G_ema-…, else model=G-…."""
        return self.files.get("G_ema") or self.files["G"]

    @property
    def weight_choices(self) -> tuple[str, ...]:
        """("ema", "raw"), ("ema",) or ("raw",): the generators present."""
        return tuple(choice for model, choice in WEIGHTS.items() if model in self.files)

    def missing_name(self, model: str) -> str:
        """The file name StudioGAN would have saved for a model, e.g. model=D-best-weights-step=3000.pth."""
        return f"model={model}-{self.when}-weights-step={self.step}.pth"


def run_files(path: Path) -> RunFiles:
    """The StudioGAN files saved together with path; CheckpointError when there is no generator among them."""
    match = FILE_NAME.match(path.name)
    if match is None or not path.is_file():
        raise CheckpointError(f"{path}: not a StudioGAN checkpoint (expected model=G|G_ema|D-best|current-"
                              "weights-step=N.pth)")
    model, when, step = match.group(1), match.group(2), int(match.group(3))
    found = RunFiles({}, when, step)
    for name in ("G_ema", "G", "D"):
        if (candidate := path.with_name(found.missing_name(name))).is_file():
            found.files[name] = candidate
    if not found.weight_choices:
        raise refuse(path, WHAT[model], f"no {found.missing_name('G')} or {found.missing_name('G_ema')} "
                                        "sits beside it")
    return found


def read_run(files: RunFiles) -> dict[str, tuple[dict, dict[str, torch.Tensor]]]:
    """Model name -> (the file's dict, its state dict); memory-mapped, tensors are read only when used."""
    return {model: read_studiogan_file(path, WHAT[model]) for model, path in files.files.items()}


def read_configs(files: RunFiles, contents: dict) -> tuple[GeneratorConfig, DiscriminatorConfig | None]:
    """Both architectures from the files' shapes alone; CheckpointError when they do not fit together."""
    configs = {model: generator_config(weight_shapes(contents[model][1]), files.files[model])
               for model in WEIGHTS if model in files.files}
    generator, *others = configs.values()
    if any(other != generator for other in others):
        raise refuse(files.files["G"], "generator", f"its architecture differs from {files.files['G_ema'].name}'s")
    if "D" not in files.files:
        return generator, None
    discriminator = discriminator_config(weight_shapes(contents["D"][1]), generator.resolution, files.files["D"])
    if discriminator.num_classes not in (0, generator.num_classes):
        raise refuse(files.files["D"], "discriminator", f"it has {discriminator.num_classes} classes, the "
                                                        f"generator {generator.num_classes}")
    return generator, discriminator


def query_shapes(generator: GeneratorConfig, discriminator: DiscriminatorConfig | None) -> dict[str, tuple[int, int]]:
    """Layer name -> (H, W) of the map it reads, G's first."""
    shapes = {f"G.attn{index}": (side, side) for index, side in enumerate(generator.attention_sides())}
    if discriminator is not None:
        shapes.update({f"D.attn{index}": (side, side) for index, side in enumerate(discriminator.attention_sides())})
    return shapes


class StudioGANModel(LoadedModel):
    """A StudioGAN run: G_ema ('ema') and/or G ('raw'), and D when its file sits beside them."""

    family = FAMILY

    def __init__(self, files: RunFiles, device: torch.device) -> None:
        contents = read_run(files)  # memory-mapped: the optimizer state is never read; weights are copied
        generator_config, discriminator_config = read_configs(files, contents)  # refused before anything is built
        generators: dict[str, nn.Module] = {}
        for model, choice in WEIGHTS.items():
            if model in files.files:
                folded = fold_as_studiogan_samples(contents[model][1], files.files[model], WHAT[model])
                generators[choice] = build(StudioGANGenerator, generator_config, folded, files.files[model],
                                           WHAT[model], device)
        discriminator, self.run_name = None, None
        if discriminator_config is not None:
            loaded, state = contents["D"]
            folded = fold_as_studiogan_samples(state, files.files["D"], "discriminator")
            discriminator = build(StudioGANDiscriminator, discriminator_config, folded, files.files["D"],
                                  "discriminator", device)
            self.run_name = loaded.get("run_name") if isinstance(loaded.get("run_name"), str) else None
        self.weight_choices = files.weight_choices
        super().__init__(files.primary, device, generators, discriminator, resolution=generator_config.resolution,
                         z_dim=generator_config.z_dim, num_classes=generator_config.num_classes,
                         class_names=class_names(generator_config.num_classes), step=files.step)
        self.files, self.config, self.discriminator_config = files, generator_config, discriminator_config

    def query_shapes(self) -> dict[str, tuple[int, int]]:
        """From the architecture the shapes describe."""
        return query_shapes(self.config, self.discriminator_config)

    def report(self) -> str:
        """Markdown: what was imported and what the files lack."""
        layers = self.layers_text()
        classes = f"{self.num_classes} classes" if self.conditional else "unconditional"
        held = [name for name in ("G_ema", "G", "D") if name in self.files.files]
        lacks = [f"no {label} ({self.files.missing_name(name)})" for name, label in
                 (("G_ema", "EMA generator"), ("G", "raw generator"), ("D", "discriminator"))
                 if name not in self.files.files] + ["no training history"]
        run = f", run `{self.run_name}`" if self.run_name else ""
        return (f"**{FAMILY}** {BACKBONES[self.config.backbone]} checkpoint{run}, {self.files.when} weights of step "
                f"{self.step}: {self.resolution}×{self.resolution}, {classes}, z of {self.z_dim}; layers: "
                f"{layers or 'none'}. Read {', '.join(held)}; {', '.join(lacks)}. Spectral norm folded after one "
                "power iteration from the stored u (eps 1e-6), as StudioGAN's own sampling computes its first "
                "batch (its GeneratorController keeps Conv/Linear/Embedding in train mode); batch norm uses the "
                "running statistics. The optimizer state is not read.")


def claims(path: Path) -> bool:
    """A file named as StudioGAN saves them: model=G|G_ema|D-best|current-weights-step=N.pth."""
    return path.is_file() and FILE_NAME.match(path.name) is not None


def summarise(path: Path) -> ModelSummary:
    """From the files' names and shapes (memory-mapped; CheckpointError on a bad file).

    Any file of a save gives the same summary, whose path is the save's primary file (G_ema, else G), so a
    list of a folder's files can keep one entry per save.
    """
    files = run_files(path)
    generator, discriminator = read_configs(files, read_run(files))
    return ModelSummary(path=files.primary, family=FAMILY, run=path.parent.name, step=files.step,
                        layers=tuple(query_shapes(generator, discriminator)), resolution=generator.resolution,
                        num_classes=generator.num_classes, class_names=class_names(generator.num_classes),
                        weight_choices=files.weight_choices)


def open_model(path: Path, device: torch.device) -> StudioGANModel:
    """Read, validate, fold spectral norm and build the run's networks (CheckpointError on a bad file)."""
    return StudioGANModel(run_files(path), device)


__all__ = ["FAMILY", "RunFiles", "StudioGANModel", "claims", "open_model", "run_files", "summarise"]
