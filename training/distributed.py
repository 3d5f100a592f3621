"""Process-group set-up for torchrun (DistributedDataParallel): nccl on GPU, gloo on CPU."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from sagan_viz.devices import resolve_device


@dataclass(frozen=True)
class ProcessInfo:
    """Where this process sits in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, samples and the progress bar."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world_size > 1


def process_info_from_environment() -> ProcessInfo:
    """Read RANK / WORLD_SIZE / LOCAL_RANK as torchrun sets them; one process otherwise."""
    return ProcessInfo(
        rank=int(os.environ.get("RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


def select_device(requested: str, process: ProcessInfo) -> torch.device:
    """auto: cuda, then mps, then cpu; each process takes the GPU of its local rank."""
    return resolve_device(requested, index=process.local_rank)


def start_process_group(process: ProcessInfo, device: torch.device) -> None:
    """Join the torchrun process group when there is more than one process."""
    if process.distributed and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=process.rank, world_size=process.world_size)


def end_process_group() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_initialized():
        dist.destroy_process_group()


def gather_objects(value, process: ProcessInfo) -> list:
    """[value of rank 0, value of rank 1, ...] on every rank ([value] alone when not distributed)."""
    if not process.distributed:
        return [value]
    gathered = [None] * process.world_size
    dist.all_gather_object(gathered, value)
    return gathered
