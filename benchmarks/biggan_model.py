"""A BigGAN-deep-128-sized folder with random weights, made by pytorch-pretrained-biggan's own code, cached.

The default BigGANConfig() is the 128x128 model (channel width 128, 1,000 classes, attention at 64x64), so
loading and running it costs what the real file costs. The weights keep the package's initialisation
except where that would not be a usable file: spectral norm's u and v are converged by power iteration
(a real file's are; random ones can give sigma <= 0, which the reader refuses), the output batch norm's
affine weights (torch.Tensor(n), i.e. uninitialised memory) are set, and gamma of the attention layer is
made non-zero so that attention changes the image.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

DEFAULT_FOLDER = Path("/tmp/bench-biggan/biggan-deep-128-random")
POWER_ITERATIONS = 30
GAMMA = 0.7


def converge_spectral_norm(module: torch.nn.Module) -> None:
    """Set u, v of a spectral-norm module near W's top singular pair, as a long training run leaves them."""
    weight = module.weight_orig.reshape(module.weight_orig.shape[0], -1)
    u, v = module.weight_u, module.weight_v
    for _ in range(POWER_ITERATIONS):
        v = torch.nn.functional.normalize(weight.t() @ u, dim=0)
        u = torch.nn.functional.normalize(weight @ v, dim=0)
    module.weight_u.copy_(u)
    module.weight_v.copy_(v)


def make_reference(seed: int = 0):
    """The package's BigGAN(BigGANConfig()) with usable random weights (see the module docstring)."""
    from pytorch_pretrained_biggan import BigGAN, BigGANConfig  # pulls in scipy and boto3

    torch.manual_seed(seed)
    model = BigGAN(BigGANConfig())
    with torch.no_grad():
        model.generator.bn.weight.fill_(1.0)
        model.generator.bn.bias.zero_()
        for name, parameter in model.named_parameters():
            if name.endswith("gamma"):
                parameter.fill_(GAMMA)
        for module in model.modules():
            if hasattr(module, "weight_orig"):
                converge_spectral_norm(module)
    return model.eval()


def ensure_model_folder(folder: Path = DEFAULT_FOLDER) -> Path:
    """folder with config.json and pytorch_model.bin, written once (tmp then rename) and reused afterwards."""
    weights, config = folder / "pytorch_model.bin", folder / "config.json"
    if weights.is_file() and config.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    model = make_reference()
    partial = folder / "pytorch_model.bin.tmp"
    torch.save(model.state_dict(), partial)
    config.write_text(model.config.to_json_string())
    partial.replace(weights)  # last: a folder with both files is complete
    return folder


def describe_folder(folder: Path) -> dict:
    """Sizes and the config, for the results file."""
    weights = folder / "pytorch_model.bin"
    config = json.loads((folder / "config.json").read_text())
    return {"folder": str(folder), "weights_bytes": weights.stat().st_size,
            "channel_width": config["channel_width"], "output_dim": config["output_dim"],
            "num_classes": config["num_classes"], "attention_layer_position": config["attention_layer_position"]}


if __name__ == "__main__":
    print(describe_folder(ensure_model_folder()))
