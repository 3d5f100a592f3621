"""Load, generate and β costs of a BigGAN-deep-128-sized model, each against pytorch-pretrained-biggan's own.

bench_biggan.py calls these in one process (one torch thread). Ours and the reference alternate in rounds
(AB, BA, ...) so that the shared machine's noise hits both alike; ratios are ours / reference.
- load: sagan_viz.load_checkpoint(folder, "cpu") against BigGAN.from_pretrained(folder) (which builds the
  network with a random initialisation first, then loads the file).
- generate: LoadedModel.generate(seed, label=207, truncation=0.4), everything it does (z, hooks that keep
  the attention layer's input, the uint8 image), against the reference's forward alone on the same z and
  one-hot class, under no_grad in eval mode.
- β of G.attn0 for one image: the whole (4096, 1024) matrix, one row the first time (computing and
  caching g(x), f(x)) and one row afterwards (what a click costs).
"""
from __future__ import annotations

import gc
import statistics
import time
from functools import partial
from pathlib import Path

import torch

LABEL, TRUNCATION = 207, 0.4  # golden retriever, the package README's truncation


def timed(call) -> tuple[float, object]:
    """(wall seconds, result) of call()."""
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def spread(seconds: list[float]) -> dict:
    """Median, min, max and every value, in seconds."""
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds), "runs": seconds}


def alternating(first, second, rounds: int) -> tuple[list[float], list[float]]:
    """Seconds of first() and second(), rounds each, in the orders AB, BA, AB, ..."""
    times = ([], [])
    for number in range(rounds):
        order = (0, 1) if number % 2 == 0 else (1, 0)
        for which in order:
            gc.collect()
            times[which].append(timed((first, second)[which])[0])
    return times


def measure_load(folder: Path, rounds: int) -> dict:
    """Median seconds of our loader and of the reference's from_pretrained, alternating; and their ratio."""
    from pytorch_pretrained_biggan import BigGAN

    import sagan_viz

    ours, reference = alternating(lambda: sagan_viz.load_checkpoint(folder, device="cpu"),
                                  lambda: BigGAN.from_pretrained(str(folder)), rounds)
    return {"ours": spread(ours), "reference": spread(reference),
            "ratio": statistics.median(ours) / statistics.median(reference)}


def measure_generate(model, reference, rounds: int, warm_up: int = 2) -> dict:
    """model.generate against the reference forward on the same inputs, alternating; seeds vary by round."""
    one_hot = torch.nn.functional.one_hot(torch.tensor([LABEL]), reference.config.num_classes).float()

    def ours(seed: int):
        return model.generate(seed=seed, label=LABEL, truncation=TRUNCATION)

    @torch.no_grad()
    def reference_forward(z: torch.Tensor) -> torch.Tensor:
        return reference(z, one_hot, TRUNCATION)

    for seed in range(warm_up):  # first calls allocate and pick kernels
        ours(seed), reference_forward(model.latent(seed, TRUNCATION))
    times, difference = ([], []), 0.0
    for number in range(rounds):
        seed = 100 + number
        z = model.latent(seed, TRUNCATION)  # drawn outside the timing: the reference is given it
        calls, results = (partial(ours, seed), partial(reference_forward, z)), [None, None]
        for which in ((0, 1) if number % 2 == 0 else (1, 0)):
            gc.collect()
            seconds, results[which] = timed(calls[which])
            times[which].append(seconds)
        difference = max(difference, (results[0].image_tensor - results[1]).abs().max().item())
    return {"seeds": [100, 100 + rounds - 1], "label": LABEL, "truncation": TRUNCATION,
            "ours": spread(times[0]), "reference_forward": spread(times[1]),
            "ratio": statistics.median(times[0]) / statistics.median(times[1]),
            "max_abs_image_difference": difference}


def measure_beta(model, layer: str, repeats: int) -> dict:
    """Median seconds of the whole β of layer, of its first row (g(x), f(x) computed) and of a later row."""
    generation = model.generate(seed=1, label=LABEL, truncation=TRUNCATION)
    capture = generation.layers[layer]
    whole, first_row, row = [], [], []
    for number in range(repeats + 1):
        capture._query_key = None  # as on a fresh generation: the first row computes the projections
        first_row.append(timed(partial(capture.attention_row, 17 * number))[0])
        row.append(timed(partial(capture.attention_row, 4095 - 31 * number))[0])
        gc.collect()
        seconds, matrix = timed(partial(generation.attention.__getitem__, layer))
        whole.append(seconds)
    shape = tuple(matrix.shape)
    # how peaked the rows are: the studio draws arrows only to peaks of >= 1.5x uniform (biggan_model.py)
    peak_over_uniform = (matrix.max(dim=1).values * shape[1]).median().item()
    del matrix
    return {"layer": layer, "shape": shape, "bytes": shape[0] * shape[1] * 4,
            "row_max_over_uniform_median": peak_over_uniform,
            "whole": spread(whole[1:]), "first_row": spread(first_row[1:]), "row": spread(row[1:])}


def profile_generate(model, top: int = 8) -> list[dict]:
    """The ops that take most of one generate (torch.profiler, self CPU time), in ms."""
    from torch.profiler import ProfilerActivity, profile

    model.generate(seed=0, label=LABEL, truncation=TRUNCATION)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        model.generate(seed=1, label=LABEL, truncation=TRUNCATION)
    events = sorted(profiler.key_averages(), key=lambda event: event.self_cpu_time_total, reverse=True)
    return [{"op": event.key, "calls": event.count, "self_ms": event.self_cpu_time_total / 1e3}
            for event in events[:top]]
