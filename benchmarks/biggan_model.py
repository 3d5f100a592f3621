"""A BigGAN-deep-128-sized folder with random weights, made by pytorch-pretrained-biggan's own code, cached.

The default BigGANConfig() is the 128x128 model (channel width 128, 1,000 classes, attention at 64x64), so
loading and running it costs what the real file costs. The weights keep the package's initialisation
except where that would not be a usable file: spectral norm's u and v are converged by power iteration
(a real file's are; random ones can give sigma <= 0, which the reader refuses), the output batch norm's
affine weights (torch.Tensor(n), i.e. uninitialised memory) are set, gamma of the attention layer is
made non-zero so that attention changes the image, and the attention layer's query and key projections
are made SHARPNESS times larger, so that its β rows peak like a trained layer's (row maxima 4-9x uniform
for seed 7, instead of 1.05x). With the package's own initialisation β is within a few percent of uniform,
and the studio then draws no arrows (a peak must reach 1.5x uniform), which would make a click cheaper
than on the real model. The projections are scaled through the stored u: spectral norm divides the
weight by u^T W v, so u is tilted away from W's top left singular vector until that is sigma_1 / SHARPNESS;
the package (eval mode) and sagan-viz (folding at load) both read the file that way.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

DEFAULT_FOLDER = Path("/tmp/bench-biggan/biggan-deep-128-random")
POWER_ITERATIONS = 30
GAMMA = 0.7
SHARPNESS = 8.0
RECIPE = {"power_iterations": POWER_ITERATIONS, "gamma": GAMMA, "attention_sharpness": SHARPNESS, "seed": 0}
RECIPE_NAME = "bench_recipe.json"  # beside the files: a folder made with another recipe is made again


def converge_spectral_norm(module: torch.nn.Module) -> None:
    """Set u, v of a spectral-norm module near W's top singular pair, as a long training run leaves them."""
    weight = module.weight_orig.reshape(module.weight_orig.shape[0], -1)
    u, v = module.weight_u, module.weight_v
    for _ in range(POWER_ITERATIONS):
        v = torch.nn.functional.normalize(weight.t() @ u, dim=0)
        u = torch.nn.functional.normalize(weight @ v, dim=0)
    module.weight_u.copy_(u)
    module.weight_v.copy_(v)


def sharpen(module: torch.nn.Module, factor: float) -> None:
    """Make a spectral-norm module's effective weight factor times larger by tilting its stored u."""
    weight = module.weight_orig.reshape(module.weight_orig.shape[0], -1)
    left, _, right = torch.linalg.svd(weight, full_matrices=False)
    across = torch.randn(left.shape[0], generator=torch.Generator().manual_seed(1))
    across = torch.nn.functional.normalize(across - (across @ left[:, 0]) * left[:, 0], dim=0)  # orthogonal to u_1
    module.weight_u.copy_(left[:, 0] / factor + (1 - factor**-2) ** 0.5 * across)  # u^T W v_1 = sigma_1 / factor
    module.weight_v.copy_(right[0])


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
        attention = model.generator.layers[model.config.attention_layer_position]
        sharpen(attention.snconv1x1_theta, SHARPNESS)  # theta: the query projection, phi: the key
        sharpen(attention.snconv1x1_phi, SHARPNESS)
    return model.eval()


def ensure_model_folder(folder: Path = DEFAULT_FOLDER) -> Path:
    """folder with config.json and pytorch_model.bin, written once (tmp then rename) and reused afterwards."""
    weights, config, recipe = folder / "pytorch_model.bin", folder / "config.json", folder / RECIPE_NAME
    if weights.is_file() and config.is_file() and recipe.is_file() and json.loads(recipe.read_text()) == RECIPE:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    model = make_reference()
    partial = folder / "pytorch_model.bin.tmp"
    torch.save(model.state_dict(), partial)
    config.write_text(model.config.to_json_string())
    partial.replace(weights)
    recipe.write_text(json.dumps(RECIPE))  # last: a folder with its recipe is complete
    return folder


def describe_folder(folder: Path) -> dict:
    """Sizes and the config, for the results file."""
    weights = folder / "pytorch_model.bin"
    config = json.loads((folder / "config.json").read_text())
    return {"folder": str(folder), "weights_bytes": weights.stat().st_size,
            "channel_width": config["channel_width"], "output_dim": config["output_dim"],
            "num_classes": config["num_classes"], "attention_layer_position": config["attention_layer_position"],
            "recipe": json.loads((folder / RECIPE_NAME).read_text())}


if __name__ == "__main__":
    print(describe_folder(ensure_model_folder()))
