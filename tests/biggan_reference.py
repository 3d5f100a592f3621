"""BigGAN-deep in pytorch-pretrained-biggan's file layout, made by the package's own code with random weights."""
from __future__ import annotations

from pathlib import Path

import torch


def make_biggan_reference(settings: dict, seed: int = 0) -> torch.nn.Module:
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
