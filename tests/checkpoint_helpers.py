"""What the checkpoint tests share: a small conditional config, trained-looking networks, and ways to damage files."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from sagan_viz.checkpoint import CheckpointError, read_checkpoint, save_checkpoint, serialise_checkpoint
from sagan_viz.config import ModelConfig
from sagan_viz.networks import build_networks

CONFIG = ModelConfig(resolution=32, g_channels=8, d_channels=8, z_dim=16, num_classes=3, g_attention=(8, 16))
HISTORY = {"interval": 1, "step": [0, 1], "loss_D": [None, 1.75], "loss_G": [None, -0.25],
           "gamma": {"G.attn0": [0.0, 1e-4], "G.attn1": [0.0, -1e-4], "D.attn0": [0.0, 3e-4]}}


def make_networks():
    """(G, G_ema, D) with trained-looking state: moved BN statistics and SN vectors, distinct G and G_ema."""
    torch.manual_seed(0)
    generator, discriminator = build_networks(CONFIG)
    with torch.no_grad():
        for _ in range(2):  # train-mode passes update BN running stats and the SN power-iteration vectors
            discriminator(generator(torch.randn(4, 16), torch.tensor([0, 1, 2, 0])), torch.tensor([0, 1, 2, 0]))
        generator_ema = copy.deepcopy(generator)
        for parameter in generator_ema.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
        for layer in (generator.attention_layers()[0][1], discriminator.attention_layers()[0][1]):
            layer.gamma.fill_(0.25)  # non-zero, so attention contributes to the outputs compared below
    return generator.eval(), generator_ema.eval(), discriminator.eval()


def save(path: Path, networks, half: bool = False) -> Path:
    """The networks as a checkpoint at step 1234 with HISTORY, in full or half precision."""
    generator, generator_ema, discriminator = networks
    return save_checkpoint(path, config=CONFIG, generator=generator, generator_ema=generator_ema,
                           discriminator=discriminator, step=1234, wall_time_s=56.789, dataset="faces",
                           history=HISTORY, training={"batch_size": 4}, half=half)


def outputs(networks) -> list[torch.Tensor]:
    """G, G_ema and D outputs on fixed inputs (eval mode: no state changes)."""
    generator, generator_ema, discriminator = networks
    generator_input = torch.randn(3, 16, generator=torch.Generator().manual_seed(5))
    labels = torch.tensor([2, 0, 1])
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(6)) * 2 - 1
    with torch.no_grad():
        return [generator(generator_input, labels), generator_ema(generator_input, labels),
                discriminator(images, labels)]


def assert_refused(path: Path, *reasons: str) -> str:
    """read_checkpoint raises exactly CheckpointError, naming the file and one of the given reasons."""
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(path)
    message = str(caught.value)
    assert type(caught.value) is CheckpointError
    assert path.name in message, message
    assert any(reason in message for reason in reasons), message
    return message


def header_length(path: Path) -> int:
    """The safetensors header length a file declares."""
    return int.from_bytes(path.read_bytes()[:8], "little")


def rewrite(source: Path, target: Path, change_tensors=None, change_metadata=None) -> Path:
    """Copy a checkpoint through safetensors, letting the test alter tensors or metadata.

    The digest is recomputed, as a hostile or careless writer would: what is tested is the check behind it.
    """
    tensors = load_file(str(source))
    with safe_open(str(source), framework="pt") as handle:
        metadata = dict(handle.metadata())
    if change_tensors:
        change_tensors(tensors)
    if change_metadata:
        change_metadata(metadata)
    target.write_bytes(serialise_checkpoint(tensors, metadata))
    return target
