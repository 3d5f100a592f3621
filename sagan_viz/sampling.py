"""Many generations of one model at once: images over seeds, and attention statistics over them."""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from .analysis import attention_entropy, mean_attention_distance, query_dependence
from .families.interface import LoadedModel
from .imaging import to_uint8_images


@torch.no_grad()
def generated_images(model: LoadedModel, seeds: Iterable[int], weights: str | None = None,
                     batch_size: int = 250) -> np.ndarray:
    """(N, H, W, 3) uint8 images of the given seeds, batched; image k equals model.generate(seeds[k]).image."""
    seeds = [int(seed) for seed in seeds]
    generator = model.generator_for(weights or model.weight_choices[0])
    truncation = model.resolve_truncation(None)
    batches = [np.zeros((0, model.resolution, model.resolution, 3), np.uint8)]
    for start in range(0, len(seeds), batch_size):
        chunk = seeds[start : start + batch_size]
        z = torch.cat([model.latent(seed, truncation) for seed in chunk]).to(model.device)  # (B, z_dim)
        labels = None
        if model.conditional:  # the class generate() draws for a seed when none is given
            labels = model.label_tensor([model.default_label(seed) for seed in chunk])
        # eval-mode BN: batching changes nothing
        batches.append(to_uint8_images(model.run_generator(generator, z, labels, truncation)))
    return np.concatenate(batches)


def attention_statistics(model: LoadedModel, seeds: Iterable[int], weights: str | None = None,
                         max_pairs: int | None = 4096) -> dict[str, dict[str, float]]:
    """Per attention layer: distance, entropy and query_dependence averaged over seeds, and gamma.

    distance is in image widths, entropy and query_dependence in [0, 1] (see analysis.py);
    query_dependence samples max_pairs query pairs per image (None: all pairs, slow at 32x32 grids).
    D's layers see the generated image. An empty dict for a model without attention.
    """
    seeds = [int(seed) for seed in seeds]
    if not seeds:
        raise ValueError("attention_statistics needs at least one seed")
    sums: dict[str, dict[str, float]] = {}
    gamma: dict[str, float] = {}
    for seed in seeds:
        for name, layer in model.generate(seed, weights=weights).layers.items():
            beta = layer.attention.double().cpu().numpy()
            values = sums.setdefault(name, {"distance": 0.0, "entropy": 0.0, "query_dependence": 0.0})
            values["distance"] += mean_attention_distance(beta, layer.query_shape, layer.key_shape)
            values["entropy"] += attention_entropy(beta)
            values["query_dependence"] += query_dependence(beta, max_pairs=max_pairs, seed=seed)
            gamma[name] = layer.gamma
    return {name: {**{key: value / len(seeds) for key, value in values.items()}, "gamma": gamma[name]}
            for name, values in sums.items()}
