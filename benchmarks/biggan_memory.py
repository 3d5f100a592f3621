"""Memory one BigGAN-deep generation adds to a studio session: what its Generation keeps alive.

Two ways, in a fresh process (`python -m benchmarks.biggan_memory FOLDER COUNT` from the repository root,
which prints one JSON line; bench_biggan.py starts it):
- counting: walk everything reachable from the Generation (its fields, the layer capture, the cached
  query and key projections after a click) and add up the distinct tensor storages and NumPy buffers.
  Modules are not entered: the network's weights are the model's, shared by every generation.
- measuring: COUNT generations, each clicked once (one β row, which caches g(x) and f(x)), kept in a list;
  the growth of RSS and of tracemalloc's traced bytes (Python objects and NumPy buffers; torch's CPU
  allocator is invisible to it) divided by COUNT. The parent sets MALLOC_MMAP_THRESHOLD_ so that glibc
  hands every large block back on free: otherwise a freed activation's pages stay resident and the next
  kept tensor lands in them, and RSS growth under-counts.
Also the transient peak of one generate (VmHWM growth above RSS), which is gone when it returns.
"""
from __future__ import annotations

import gc
import json
import sys
import tracemalloc
import types
from pathlib import Path

import numpy as np
import torch

LABEL, TRUNCATION, CLICKED_QUERY = 207, 0.4, 2080  # a query near the middle of the 64x64 grid
MMAP_THRESHOLD = 1 << 17  # bytes: set as MALLOC_MMAP_THRESHOLD_ by the parent (a fixed threshold)


def status_kib(field: str) -> int:
    """A field of /proc/self/status in KiB, e.g. VmRSS, VmHWM."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def storage_key_and_bytes(value) -> tuple[tuple, int] | None:
    """(identity of the memory behind a tensor or array, its size in bytes), None for anything else."""
    if isinstance(value, np.ndarray):
        while isinstance(value, np.ndarray) and value.base is not None:
            value = value.base  # a view: count the buffer it views (torch's .numpy() has the tensor as base)
        if isinstance(value, np.ndarray):
            return ("numpy", value.__array_interface__["data"][0]), value.nbytes
    if isinstance(value, torch.Tensor):
        storage = value.untyped_storage()
        return ("torch", storage.data_ptr()), storage.nbytes()
    return None


def kept_bytes(root) -> dict:
    """Distinct tensor storages and NumPy buffers reachable from root (modules not entered): bytes, count."""
    seen, buffers, stack = set(), {}, [root]
    while stack:
        value = stack.pop()
        if id(value) in seen or isinstance(value, (torch.nn.Module, type, types.ModuleType, types.FunctionType)):
            continue
        seen.add(id(value))
        found = storage_key_and_bytes(value)
        if found is not None:
            buffers[found[0]] = found[1]
            continue
        stack.extend(gc.get_referents(value))
    return {"bytes": sum(buffers.values()), "buffers": len(buffers)}


def breakdown(generation) -> dict[str, int]:
    """Bytes kept per field of a Generation, the layer captures split into input and projections."""
    parts = {name: kept_bytes(value)["bytes"] for name, value in vars(generation).items() if name != "layers"}
    for name, capture in generation.layers.items():
        parts[f"{name}.features"] = kept_bytes(capture.features)["bytes"]
        parts[f"{name}.query_key"] = kept_bytes(capture._query_key)["bytes"]
    return {name: size for name, size in parts.items() if size}


def generate_and_click(model, seed: int):
    """One generation, clicked once (its β row computed, so the projections are cached)."""
    generation = model.generate(seed=seed, label=LABEL, truncation=TRUNCATION)
    generation.layers["G.attn0"].attention_row(CLICKED_QUERY)
    return generation


def measure(folder: Path, count: int) -> dict:
    """Counted and measured bytes per kept generation (see the module docstring)."""
    import sagan_viz

    torch.set_num_threads(1)
    model = sagan_viz.load_checkpoint(folder, device="cpu")
    for seed in range(3):  # warm-up: kernels, caches and the allocator's first arenas
        generate_and_click(model, seed)
    unclicked = model.generate(seed=3, label=LABEL, truncation=TRUNCATION)
    counted_before_click = kept_bytes(unclicked)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    rss_before_peak = status_kib("VmRSS")
    del unclicked
    generate_and_click(model, 4)
    transient_peak_kib = status_kib("VmHWM") - rss_before_peak
    gc.collect()
    tracemalloc.start()
    rss_start, traced_start = status_kib("VmRSS"), tracemalloc.get_traced_memory()[0]
    kept = [generate_and_click(model, 100 + number) for number in range(count)]
    gc.collect()
    rss_end, traced_end = status_kib("VmRSS"), tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    whole_beta = kept[0].attention["G.attn0"]  # read, not stored: the Generation must stay as it was
    after_whole_beta = kept_bytes(kept[0])["bytes"]
    del whole_beta
    counted = [kept_bytes(generation) for generation in kept]
    return {
        "generations": count, "malloc_mmap_threshold": MMAP_THRESHOLD,
        "counted_bytes_per_generation": max(entry["bytes"] for entry in counted),
        "counted_buffers_per_generation": max(entry["buffers"] for entry in counted),
        "counted_bytes_before_click": counted_before_click["bytes"],
        "counted_bytes_after_reading_whole_beta": after_whole_beta,
        "breakdown_bytes": breakdown(kept[0]),
        "rss_growth_bytes_per_generation": (rss_end - rss_start) * 1024 / count,
        "tracemalloc_growth_bytes_per_generation": (traced_end - traced_start) / count,
        "transient_peak_of_one_generate_bytes": transient_peak_kib * 1024,
    }


if __name__ == "__main__":
    print(json.dumps(measure(Path(sys.argv[1]), int(sys.argv[2]))), flush=True)
