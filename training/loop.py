"""The SAGAN training loop: hinge loss, TTUR, EMA of G, checkpoints, exact resume."""
from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from sagan_viz.atomic_files import remove_interrupted_writes
from sagan_viz.checkpoint import (
    SNAPSHOT_FILE_NAME,
    SNAPSHOT_GLOB,
    CheckpointContents,
    CheckpointError,
    build_networks_from,
    load_resume_state,
    read_checkpoint,
    resume_state_path,
    save_checkpoint,
    save_resume_state,
    snapshot_name,
    snapshot_step,
)
from sagan_viz.config import ModelConfig
from sagan_viz.history import TrainingHistory
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

RESUME_FIELDS = ("optimizer_g", "optimizer_d", "data_generator_states", "noise_generator_states")


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


def checkpoint_path(out_dir: str | Path, step: int) -> Path:
    """Where the snapshot of a given step lives."""
    return Path(out_dir) / snapshot_name(step)


def resumable_checkpoints(out_dir: str | Path) -> list[Path]:
    """Snapshots in out_dir named step_N.safetensors that have a resume sidecar, newest first."""
    named = [(step, path) for path in Path(out_dir).glob(SNAPSHOT_GLOB)
             if (step := snapshot_step(path.name)) is not None and resume_state_path(path).exists()]
    return [path for _, path in sorted(named, reverse=True)]


def find_latest_checkpoint(out_dir: str | Path) -> Path | None:
    """Newest snapshot in out_dir that has its resume sidecar, or None."""
    return next(iter(resumable_checkpoints(out_dir)), None)


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
    history: TrainingHistory


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
        history=TrainingHistory.new(attention_layer_names(config), options.history_every),
    )


def resumed_run_state(
    options: TrainConfig, contents: CheckpointContents, device: torch.device, process: ProcessInfo
) -> RunState:
    """Rebuild the run exactly as the checkpoint and its sidecar left it (CheckpointError for a damaged sidecar)."""
    generator, generator_ema, discriminator = build_networks_from(contents, device)
    for module in (generator, discriminator):
        module.train().requires_grad_(True)
    optimizer_g, optimizer_d = _optimizers(options, generator, discriminator)
    sidecar = resume_state_path(contents.path)
    saved = load_resume_state(contents.path)
    missing = [name for name in RESUME_FIELDS if name not in saved] if isinstance(saved, dict) else list(RESUME_FIELDS)
    if missing:
        raise CheckpointError(f"{sidecar}: damaged resume state (no {', '.join(missing)})")
    _load_optimizer(optimizer_g, saved["optimizer_g"], sidecar, "optimizer_g")
    _load_optimizer(optimizer_d, saved["optimizer_d"], sidecar, "optimizer_d")
    data_generator, noise_generator = torch.Generator(), torch.Generator()
    for generator_state, name in ((data_generator, "data_generator_states"), (noise_generator, "noise_generator_states")):
        states = saved[name]
        try:
            generator_state.set_state(states[process.rank])
        except (IndexError, KeyError, TypeError, RuntimeError) as error:
            count = len(states) if isinstance(states, (list, tuple)) else "no"
            raise CheckpointError(f"{sidecar}: damaged resume state ({name}: {count} states for rank "
                                  f"{process.rank}; {type(error).__name__}: {str(error)[:120]})") from None
    return RunState(
        generator, generator_ema, discriminator, optimizer_g, optimizer_d, data_generator, noise_generator,
        step=contents.step, wall_time_s=contents.wall_time_s, history=contents.history,
    )


def _load_optimizer(optimizer: torch.optim.Optimizer, saved, sidecar: Path, name: str) -> None:
    """optimizer.load_state_dict(saved), refusing a state that does not fit its parameters as CheckpointError."""
    try:
        optimizer.load_state_dict(saved)
    except (KeyError, ValueError, TypeError, IndexError, AttributeError, RuntimeError) as error:
        raise CheckpointError(f"{sidecar}: its {name} state does not fit the networks "
                              f"({type(error).__name__}: {str(error)[:120]})") from None
    # load_state_dict checks group sizes, not the moments' shapes: a mismatch would fail at the first step.
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            for key, value in optimizer.state.get(parameter, {}).items():
                if not isinstance(value, torch.Tensor) or value.dim() == 0:
                    continue
                if value.shape != parameter.shape or not torch.isfinite(value).all():
                    raise CheckpointError(f"{sidecar}: its {name} state does not fit the networks ({key} of shape "
                                          f"{tuple(value.shape)} for a parameter of {tuple(parameter.shape)}, "
                                          "or non-finite)")


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


def say(process: ProcessInfo, message: str) -> None:
    """One line for the person running the trainer (main process only), beside the progress bar."""
    if process.is_main:
        print(message, file=sys.stderr, flush=True)


def prepare_run(options: TrainConfig, config: ModelConfig, resume: bool, device, process,
                resume_from_valid: bool = False) -> RunState:
    """A fresh run, or the newest checkpoint in out_dir continued (its own model config wins).

    Temporaries left by an interrupted write are removed first. A damaged newest checkpoint stops a resume,
    naming it; resume_from_valid continues from the newest checkpoint that loads instead, saying so.
    """
    if process.is_main:
        removed = remove_interrupted_writes(options.out_dir, SNAPSHOT_FILE_NAME)
        if removed:
            say(process, f"removed {len(removed)} unfinished temporary file(s) left by an interrupted write in "
                         f"{options.out_dir}: {', '.join(path.name for path in removed[:3])}"
                         f"{' ...' if len(removed) > 3 else ''}")
    if resume or resume_from_valid:
        return _resume_newest(options, device, process, resume_from_valid)
    if find_latest_checkpoint(options.out_dir) is not None:
        raise FileExistsError(f"{options.out_dir} already holds checkpoints: pass --resume, or choose another --out")
    return new_run_state(options, config, device, process)


def _resume_newest(options: TrainConfig, device, process: ProcessInfo, resume_from_valid: bool) -> RunState:
    candidates = resumable_checkpoints(options.out_dir)
    if not candidates:
        raise FileNotFoundError(f"--resume: no checkpoint with resume state in {options.out_dir}")
    skipped = []
    for path in candidates:
        try:
            contents = read_checkpoint(path)
            if contents.dataset != options.data:
                raise ValueError(f"--resume: {path} was trained on {contents.dataset!r}, not {options.data!r}")
            state = resumed_run_state(options, contents, device, process)
        except CheckpointError as error:
            if not resume_from_valid:
                raise CheckpointError(f"{error} (pass --resume-from-valid to continue from the newest checkpoint "
                                      "that loads)") from None
            say(process, f"skipping {error}")
            skipped.append(path.name)
            continue
        if skipped:
            say(process, f"resuming from {path.name} (step {contents.step}), the newest valid checkpoint; "
                         f"left as they are: {', '.join(skipped)}")
        return state
    raise CheckpointError(f"--resume-from-valid: none of the {len(candidates)} checkpoints with resume state in "
                          f"{options.out_dir} can be resumed")


def train(options: TrainConfig, config: ModelConfig, resume: bool = False, resume_from_valid: bool = False) -> RunState:
    """Train until options.steps, writing samples, history and checkpoints to options.out_dir.

    resume continues from the newest checkpoint; resume_from_valid from the newest one that loads.
    """
    process = process_info_from_environment()
    device = select_device(options.device, process)
    start_process_group(process, device)
    try:
        return _train(options, config, resume, resume_from_valid, device, process)
    finally:
        end_process_group()


def _train(options: TrainConfig, config: ModelConfig, resume: bool, resume_from_valid: bool, device,
           process: ProcessInfo) -> RunState:
    dataset = load_dataset(options.data, config.resolution, size=options.data_size, seed=options.seed)
    if config.num_classes not in (0, dataset.num_classes):
        raise ValueError(f"config has {config.num_classes} classes but {dataset.name} has {dataset.num_classes}")
    state = prepare_run(options, config, resume, device, process, resume_from_valid)
    config = state.generator.config
    G, D = state.generator, state.discriminator
    if process.distributed:
        G, D = DistributedDataParallel(G), DistributedDataParallel(D)
    sample_z = torch.randn(64, config.z_dim, generator=torch.Generator().manual_seed(options.seed + 1))
    sample_labels = torch.arange(64) % config.num_classes if config.conditional else None
    if not state.history.steps:  # a fresh run; one resumed from the step-0 checkpoint already has this row
        state.history.record(0, None, None, gammas(state.generator, state.discriminator))
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
            state.history.record(state.step, mean_d, mean_g, gammas(state.generator, state.discriminator))
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
