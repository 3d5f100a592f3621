"""Shared fixtures: tiny checkpoints made by the real trainer, never the bundled ones."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
from biggan_reference import make_biggan_reference, save_biggan_reference
from checkpoint_helpers import make_networks, save

from sagan_viz.app import LAUNCH_SETTINGS, build_app
from sagan_viz.config import ModelConfig
from training.loop import train
from training.options import TrainConfig


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny models gain nothing from threads; on a busy 2-core machine two threads mostly wait for each other."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


TINY = dict(resolution=32, g_channels=16, d_channels=16, z_dim=16)


def train_tiny_run(out_dir: Path, steps: int = 2, **model_overrides) -> list[Path]:
    """Train a tiny SAGAN on a few procedural faces; returns its checkpoints, oldest first."""
    options = TrainConfig(
        out_dir=str(out_dir), data="faces", data_size=64, steps=steps, batch_size=4,
        checkpoint_every=1, sample_every=steps, history_every=1, progress=False,
    )
    train(options, ModelConfig(**{**TINY, **model_overrides}))
    return sorted(out_dir.glob("step_*.safetensors"))


@pytest.fixture(scope="session")
def tiny_checkpoint_dir(tmp_path_factory) -> Path:
    """A folder like checkpoints/: a tiny SAGAN run (3 snapshots) and a tiny run without attention."""
    root = tmp_path_factory.mktemp("checkpoints")
    train_tiny_run(root / "tiny-sagan", steps=2)
    train_tiny_run(root / "tiny-noattn", steps=2, g_attention=(), d_attention=())
    for sidecar in root.rglob("*.resume.pt"):
        sidecar.unlink()  # bundled checkpoints ship without optimizer state; so do these
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_checkpoint_dir) -> Path:
    """The newest snapshot of the tiny SAGAN run."""
    return sorted((tiny_checkpoint_dir / "tiny-sagan").glob("step_*.safetensors"))[-1]


# An ImageNet-sized class list on a tiny network: the class picker shows the 1,000 real names.
TINY_IMAGENET_BIGGAN = dict(output_dim=32, z_dim=8, class_embed_dim=8, channel_width=8, num_classes=1000, eps=1e-4,
                            n_stats=51, layers=[(False, 16, 16), (True, 16, 8), (True, 8, 4), (True, 4, 2), (False, 2, 1)],
                            attention_layer_position=3)


@pytest.fixture(scope="session")
def tiny_biggan_deep(tmp_path_factory) -> Path:
    """A folder biggan-deep-tiny/ with config.json and pytorch_model.bin, 1,000 classes, attention at 16x16."""
    model = make_biggan_reference(TINY_IMAGENET_BIGGAN, seed=3)
    return save_biggan_reference(model, tmp_path_factory.mktemp("models") / "biggan-deep-tiny")


# The checkpoint tests' networks (G, EMA-G, D with trained-looking state) and their checkpoint file.
@pytest.fixture(scope="module")
def networks():
    return make_networks()


@pytest.fixture(scope="module")
def checkpoint_file(networks, tmp_path_factory) -> Path:
    return save(tmp_path_factory.mktemp("ckpt") / "step_0001234.safetensors", networks)


# Browser tests (Playwright driving Debian's Chromium, which .ci/run installs).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def studio_url(tiny_checkpoint_dir):
    demo = build_app(tiny_checkpoint_dir, device="cpu")
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **LAUNCH_SETTINGS)
    yield f"http://127.0.0.1:{port}"
    demo.close()


@pytest.fixture(scope="module")
def page(studio_url):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: .ci/run installs Debian's chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(30_000)
        page.goto(studio_url)
        yield page
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("SAGAN_VIZ_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder
