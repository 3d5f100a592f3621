"""The SAGAN training loop: hinge loss, TTUR, EMA of G, checkpoints, exact resume."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from sagan_viz.checkpoint import (
    CheckpointContents,
    build_networks_from,
    load_resume_state,
    read_checkpoint,
    resume_state_path,
    save_checkpoint,
    save_resume_state,
)
from sagan_viz.config import ModelConfig
from sagan_viz.networks import Discriminator, Generator, attention_layer_names, build_networks, gammas

from .data import ImageDataset, load_dataset, sample_batch, to_model_range
from .distributed import (
    ProcessInfo,
    end_process_group,
    gather_objects,
    process_info_from_environment,
    select_device,
    start_process_group,
)
from .options import TrainConfig
from .progress import Progress, save_sample_grid

CHECKPOINT_GLOB = "step_*.safetensors"


def hinge_loss_discriminator(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))] (Lim & Ye 2017; SAGAN eq. 4)."""
    return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()


def hinge_loss_generator(fake_scores: torch.Tensor) -> torch.Tensor:
    """-E[D(G(z))], SAGAN eq. 4."""
    return -fake_scores.mean()


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model for parameters; buffers (BN stats, SN vectors) copied."""
    for ema_parameter, parameter in zip(ema.parameters(), model.parameters()):
        ema_parameter.lerp_(parameter, 1.0 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), model.buffers()):
        ema_buffer.copy_(buffer)


def new_history(layer_names: list[str], interval: int) -> dict:
    """An empty training history: losses and every gamma, recorded every `interval` steps."""
    return {"interval": interval, "step": [], "loss_D": [], "loss_G": [], "gamma": {n: [] for n in layer_names}}


def record_history(history: dict, step: int, loss_d: float | None, loss_g: float | None, gamma: dict) -> None:
    """Append one row to the history (losses None at step 0, before any update)."""
    history["step"].append(step)
    history["loss_D"].append(loss_d)
    history["loss_G"].append(loss_g)
    for name, value in gamma.items():
        history["gamma"][name].append(value)


def checkpoint_path(out_dir: str | Path, step: int) -> Path:
    """Where the snapshot of a given step lives."""
    return Path(out_dir) / f"step_{step:07d}.safetensors"


def find_latest_checkpoint(out_dir: str | Path) -> Path | None:
    """Newest snapshot in out_dir that has its resume sidecar, or None."""
    candidates = [p for p in Path(out_dir).glob(CHECKPOINT_GLOB) if resume_state_path(p).is_file()]
    return max(candidates, key=lambda p: int(p.stem.split("_")[1]), default=None)


@dataclass
class RunState:
    """Everything that changes during a run and must survive a resume."""

    generator: Generator
    generator_ema: Generator
    discriminator: Discriminator
    optimizer_g: torch.optim.Optimizer
    optimizer_d: torch.optim.Optimizer
    data_generator: torch.Generator
    noise_generator: torch.Generator
    step: int
    wall_time_s: float
    history: dict


def _optimizers(options: TrainConfig, generator, discriminator):
    betas = (float(options.beta1), float(options.beta2))  # torch 2.13 refuses mixed int/float betas
    return (
        torch.optim.Adam(generator.parameters(), lr=options.lr_g, betas=betas),
        torch.optim.Adam(discriminator.parameters(), lr=options.lr_d, betas=betas),
    )


def new_run_state(options: TrainConfig, config: ModelConfig, device: torch.device, process: ProcessInfo) -> RunState:
    """Fresh networks (same init on every rank, from the seed), optimizers and generators."""
    torch.manual_seed(options.seed)
    generator, discriminator = build_networks(config)
    generator_ema = copy.deepcopy(generator).eval().requires_grad_(False)  # eval: SN vectors come from G
    generator, generator_ema, discriminator = (m.to(device) for m in (generator, generator_ema, discriminator))
    optimizer_g, optimizer_d = _optimizers(options, generator, discriminator)
    return RunState(
        generator, generator_ema, discriminator, optimizer_g, optimizer_d,
        data_generator=torch.Generator().manual_seed(options.seed * 7919 + process.rank),
        noise_generator=torch.Generator().manual_seed(options.seed * 7919 + 104729 + process.rank),
        step=0, wall_time_s=0.0,
        history=new_history(attention_layer_names(config), options.history_every),
    )


def resumed_run_state(
    options: TrainConfig, contents: CheckpointContents, device: torch.device, process: ProcessInfo
) -> RunState:
    """Rebuild the run exactly as the checkpoint and its sidecar left it."""
    generator, generator_ema, discriminator = build_networks_from(contents, device)
    for module in (generator, discriminator):
        module.train().requires_grad_(True)
    optimizer_g, optimizer_d = _optimizers(options, generator, discriminator)
    saved = load_resume_state(contents.path)
    optimizer_g.load_state_dict(saved["optimizer_g"])
    optimizer_d.load_state_dict(saved["optimizer_d"])
    data_generator, noise_generator = torch.Generator(), torch.Generator()
    data_generator.set_state(saved["data_generator_states"][process.rank])
    noise_generator.set_state(saved["noise_generator_states"][process.rank])
    return RunState(
        generator, generator_ema, discriminator, optimizer_g, optimizer_d, data_generator, noise_generator,
        step=contents.step, wall_time_s=contents.wall_time_s, history=contents.history,
    )


def _random_labels(config: ModelConfig, count: int, noise_generator: torch.Generator) -> torch.Tensor | None:
    if not config.conditional:
        return None
    return torch.randint(0, config.num_classes, (count,), generator=noise_generator)


def _on(device: torch.device, tensor: torch.Tensor | None) -> torch.Tensor | None:
    return None if tensor is None else tensor.to(device, non_blocking=True)


def discriminator_step(state: RunState, G, D, dataset: ImageDataset, options: TrainConfig, device) -> torch.Tensor:
    """One D update on a real batch and a fake batch; returns the hinge loss (detached)."""
    config = state.generator.config
    images, labels = sample_batch(dataset, options.batch_size, state.data_generator)
    real = to_model_range(images.to(device))
    labels = _on(device, labels if config.conditional else None)
    z = torch.randn(options.batch_size, config.z_dim, generator=state.noise_generator).to(device)
    fake_labels = _on(device, _random_labels(config, options.batch_size, state.noise_generator))
    with torch.no_grad():
        fake = G(z, fake_labels)
    all_labels = None if labels is None else torch.cat([labels, fake_labels])
    # One D call on real and fake together: DDP allows one forward per backward.
    real_scores, fake_scores = D(torch.cat([real, fake]), all_labels).split(options.batch_size)
    loss = hinge_loss_discriminator(real_scores, fake_scores)
    state.optimizer_d.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer_d.step()
    return loss.detach()


def generator_step(state: RunState, G, D, options: TrainConfig, device) -> torch.Tensor:
    """One G update against the current D; returns the hinge loss (detached)."""
    config = state.generator.config
    z = torch.randn(options.batch_size, config.z_dim, generator=state.noise_generator).to(device)
    labels = _on(device, _random_labels(config, options.batch_size, state.noise_generator))
    loss = hinge_loss_generator(D(G(z, labels), labels))
    state.optimizer_g.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer_g.step()
    state.optimizer_d.zero_grad(set_to_none=True)  # D's gradients from this pass are not used
    return loss.detach()


def write_snapshot(state: RunState, options: TrainConfig, dataset_name: str, process: ProcessInfo) -> Path | None:
    """Sidecar first, then the checkpoint: a checkpoint that exists always has its resume state."""
    data_states = gather_objects(state.data_generator.get_state(), process)
    noise_states = gather_objects(state.noise_generator.get_state(), process)
    if not process.is_main:
        return None
    path = checkpoint_path(options.out_dir, state.step)
    save_resume_state(path, {
        "optimizer_g": state.optimizer_g.state_dict(),
        "optimizer_d": state.optimizer_d.state_dict(),
        "data_generator_states": data_states,
        "noise_generator_states": noise_states,
    })
    return save_checkpoint(
        path, config=state.generator.config, generator=state.generator, generator_ema=state.generator_ema,
        discriminator=state.discriminator, step=state.step, wall_time_s=state.wall_time_s,
        dataset=dataset_name, history=state.history, training=options.to_dict(), half=options.half_checkpoints,
    )


def prepare_run(options: TrainConfig, config: ModelConfig, resume: bool, device, process) -> RunState:
    """A fresh run, or the newest checkpoint in out_dir continued (its own model config wins)."""
    if resume:
        latest = find_latest_checkpoint(options.out_dir)
        if latest is None:
            raise FileNotFoundError(f"--resume: no checkpoint with resume state in {options.out_dir}")
        contents = read_checkpoint(latest)
        if contents.dataset != options.data:
            raise ValueError(f"--resume: {latest} was trained on {contents.dataset!r}, not {options.data!r}")
        return resumed_run_state(options, contents, device, process)
    if find_latest_checkpoint(options.out_dir) is not None:
        raise FileExistsError(f"{options.out_dir} already holds checkpoints: pass --resume, or choose another --out")
    return new_run_state(options, config, device, process)


def train(options: TrainConfig, config: ModelConfig, resume: bool = False) -> RunState:
    """Train until options.steps, writing samples, history and checkpoints to options.out_dir."""
    process = process_info_from_environment()
    device = select_device(options.device, process)
    start_process_group(process, device)
    try:
        return _train(options, config, resume, device, process)
    finally:
        end_process_group()


def _train(options: TrainConfig, config: ModelConfig, resume: bool, device, process: ProcessInfo) -> RunState:
    dataset = load_dataset(options.data, config.resolution, size=options.data_size, seed=options.seed)
    if config.num_classes not in (0, dataset.num_classes):
        raise ValueError(f"config has {config.num_classes} classes but {dataset.name} has {dataset.num_classes}")
    state = prepare_run(options, config, resume, device, process)
    config = state.generator.config
    G, D = state.generator, state.discriminator
    if process.distributed:
        G, D = DistributedDataParallel(G), DistributedDataParallel(D)
    sample_z = torch.randn(64, config.z_dim, generator=torch.Generator().manual_seed(options.seed + 1))
    sample_labels = torch.arange(64) % config.num_classes if config.conditional else None
    if not state.history["step"]:  # a fresh run; one resumed from the step-0 checkpoint already has this row
        record_history(state.history, 0, None, None, gammas(state.generator, state.discriminator))
        write_snapshot(state, options, options.data, process)
    progress = Progress(options.steps, state.step, enabled=options.progress and process.is_main)
    loss_sums, loss_count = torch.zeros(2, device=device), 0
    while state.step < options.steps:
        started = time.perf_counter()
        for _ in range(options.d_steps):
            loss_d = discriminator_step(state, G, D, dataset, options, device)
        loss_g = generator_step(state, G, D, options, device)
        update_ema(state.generator_ema, state.generator, options.ema_decay)
        loss_sums += torch.stack([loss_d, loss_g])
        loss_count += 1
        state.step += 1
        state.wall_time_s += time.perf_counter() - started
        if state.step % options.history_every == 0 or state.step == options.steps:
            mean_d, mean_g = (loss_sums / loss_count).tolist()
            record_history(state.history, state.step, mean_d, mean_g, gammas(state.generator, state.discriminator))
            progress.show(state.step, mean_d, mean_g, gammas(state.generator, state.discriminator))
            loss_sums.zero_()
            loss_count = 0
        else:
            progress.advance(state.step)
        if process.is_main and (state.step % options.sample_every == 0 or state.step == options.steps):
            save_sample_grid(state.generator_ema, sample_z, sample_labels, options.out_dir, state.step)
        if state.step % options.checkpoint_every == 0 or state.step == options.steps:
            write_snapshot(state, options, options.data, process)
    progress.close()
    return state
