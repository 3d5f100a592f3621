"""Where the fused attention kernel starts to pay: one layer's forward + backward, fused vs explicit, by size.

The fused path pads q and k from C/8 to the value width so that CPU SDPA takes its flash kernel
(attention.attend_fused); at small N that padding costs more than the kernel saves. This script times
both paths, interleaved, over N = side^2 for the shapes training uses, and prints the ratio
explicit / fused per N: attention.FUSED_MIN_POSITIONS is set from the smallest N where fused wins.

    python -m benchmarks.bench_attention_paths            # results in benchmarks/results/attention_paths.json
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from sagan_viz.attention import attend_explicit, attend_fused

RESULTS = Path(__file__).resolve().parent / "results" / "attention_paths.json"
SIDES = (8, 12, 16, 24, 32, 48, 64)
ROUNDS = 7


def one_pass(path: str, query, key, value) -> float:
    """Seconds for forward + backward through one path."""
    start = time.perf_counter()
    attended = attend_fused(query, key, value) if path == "fused" else attend_explicit(query, key, value)[0]
    attended.sum().backward()
    return time.perf_counter() - start


def case(side: int, channels: int, batch: int) -> dict:
    """Median seconds of both paths at one map size, interleaved so that machine noise hits both."""
    generator = torch.Generator().manual_seed(side)
    positions = side * side
    tensors = [torch.randn(batch, positions, width, generator=generator, requires_grad=True)
               for width in (channels // 8, channels // 8, channels)]
    times = {"fused": [], "explicit": []}
    for _ in range(ROUNDS):
        for path in times:
            times[path].append(one_pass(path, *tensors))
    fused, explicit = (statistics.median(times[path]) for path in ("fused", "explicit"))
    return {"side": side, "positions": positions, "channels": channels, "batch": batch,
            "fused_s": fused, "explicit_s": explicit, "explicit_over_fused": explicit / fused}


def main() -> None:
    """Time every size, print a table, write the JSON."""
    torch.set_num_threads(1)
    rows = [case(side, channels=64, batch=16 if side <= 32 else 2) for side in SIDES]
    print("| N | C | batch | fused ms | explicit ms | explicit ÷ fused |\n|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['positions']} | {row['channels']} | {row['batch']} | {1000 * row['fused_s']:.2f} "
              f"| {1000 * row['explicit_s']:.2f} | {row['explicit_over_fused']:.2f} |")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"torch": torch.__version__, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
