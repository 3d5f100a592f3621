"""Shared fixtures: tiny checkpoints made by the real trainer, never the bundled ones."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
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


# BigGAN-deep in pytorch-pretrained-biggan's file layout, made by the package's own code with random weights.
def make_biggan_reference(settings: dict, seed: int = 0) -> "BigGAN":
    """The package's BigGAN with every parameter and buffer random and u, v converged like a real file's."""
    from pytorch_pretrained_biggan import BigGAN, BigGANConfig  # imported here: it pulls in scipy and boto3

    torch.manual_seed(seed)
    model = BigGAN(BigGANConfig(**settings))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.fill_(0.7) if name.endswith("gamma") else parameter.normal_(0, 0.4)
        for name, buffer in model.named_buffers():
            if name.endswith("running_vars"):
                buffer.uniform_(0.3, 2.0)
            elif name.endswith("running_means"):
                buffer.normal_(0, 0.3)
        for module in model.modules():
            if hasattr(module, "weight_orig"):
                converge_power_iteration(module)
        z, classes = torch.randn(2, settings["z_dim"]), torch.eye(settings["num_classes"])[:2]
        for _ in range(3):  # train-mode forwards: each one more power iteration, as the package's converter did
            model(z, classes, 1.0)
    return model


def converge_power_iteration(module: torch.nn.Module) -> None:
    """Set a spectral-norm module's u, v to W's top singular pair, where a long training run leaves them."""
    # 30 train-mode forwards are not enough on tiny random matrices (small spectral gaps): sigma stays
    # ~1e-3 off, and the package's next power iteration (its README usage) then moves images by ~1e-3.
    left, _, right = torch.linalg.svd(module.weight_orig.reshape(module.weight_orig.shape[0], -1))
    module.weight_u.copy_(left[:, 0]), module.weight_v.copy_(right[0])


def save_biggan_reference(model, folder: Path, prefix: str = "") -> Path:
    """Write the package's file layout: {prefix}pytorch_model.bin and {prefix}config.json."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / f"{prefix}pytorch_model.bin")
    (folder / f"{prefix}config.json").write_text(model.config.to_json_string())
    return folder


# An ImageNet-sized class list on a tiny network: the class picker shows the 1,000 real names.
TINY_IMAGENET_BIGGAN = dict(output_dim=32, z_dim=8, class_embed_dim=8, channel_width=8, num_classes=1000, eps=1e-4,
                            n_stats=51, layers=[(False, 16, 16), (True, 16, 8), (True, 8, 4), (True, 4, 2), (False, 2, 1)],
                            attention_layer_position=3)


@pytest.fixture(scope="session")
def tiny_biggan_deep(tmp_path_factory) -> Path:
    """A folder biggan-deep-tiny/ with config.json and pytorch_model.bin, 1,000 classes, attention at 16x16."""
    model = make_biggan_reference(TINY_IMAGENET_BIGGAN, seed=3)
    return save_biggan_reference(model, tmp_path_factory.mktemp("models") / "biggan-deep-tiny")


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
