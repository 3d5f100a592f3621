"""One SelfAttention layer, forward + backward: which SDPA kernel, peak memory, time; per path.

The two paths, switched with set_attention_path: "fast" (use_fused=True: the library's
attend_fused, one scaled_dot_product_attention call) and "inspection" (use_fused=False: beta
materialised by the naive explicit softmax, the reference every ratio is taken against).

Peak memory, two ways:
- torch's allocation timeline: torch.profiler(profile_memory=True) records every CPU allocation
  and free torch makes, in order; the peak of their running sum is the most bytes the pass held
  on top of what was live before. Exact, and immune to the other processes on the machine, but
  blind to memory allocated outside torch's allocator.
- peak RSS growth in a fresh Python per path (`python -m benchmarks.attention_layer PATH
  BATCH THREADS`, from the repository root): warm the same path up on a small map, reset the
  kernel's high-water mark (write 5 to /proc/self/clear_refs), run the large case, read
  VmHWM - VmRSS. It sees all the process touched, page-granular.
Theory: an N x N float32 matrix is N^2 * 4 B (64 MiB at N = 4096) per batch element, and the
naive backward holds three at once (beta, kept for softmax's backward; d beta; d s).

The kernel is read from torch.profiler op names: FLASH_OP (fused, never N x N) or MATH_OP (the
math fallback: bmm + softmax, N x N materialised). On CPU, torch takes the flash kernel only when
q, k and v have the same last dimension and a last-dimension stride of 1 (sdp_utils_cpp), which is
why attend_fused zero-pads q and k to the value width.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from sagan_viz.attention import SelfAttention, set_attention_path

REPOSITORY = Path(__file__).resolve().parents[1]
MIB = 2**20
FLASH_OP = "aten::_scaled_dot_product_flash_attention_for_cpu"
MATH_OP = "aten::_scaled_dot_product_attention_math"
FAST, INSPECTION = PATHS = ("fast", "inspection")


def use_path(networks: list[nn.Module], path: str) -> None:
    """Put every SelfAttention in networks on the named path."""
    for network in networks:
        set_attention_path(network, fused=path == FAST)


def attention_case(channels: int, batch: int, side: int, seed: int = 0):
    """A paper-variant layer (gamma != 0), an input that needs grad, and an upstream gradient."""
    torch.manual_seed(seed)
    layer = SelfAttention(channels, "paper")
    with torch.no_grad():
        layer.gamma.fill_(0.5)
    x = torch.randn(batch, channels, side, side, requires_grad=True)
    return layer, x, torch.randn_like(x)


def forward_backward(layer: SelfAttention, x: torch.Tensor, upstream: torch.Tensor, path: str) -> None:
    """One forward and backward through the named path, leaving no gradients behind."""
    use_path([layer], path)
    layer(x).backward(upstream)
    x.grad = None
    layer.zero_grad(set_to_none=True)


def sdpa_kernel(layer: SelfAttention, x: torch.Tensor, upstream: torch.Tensor, path: str) -> str:
    """'flash', 'math' or 'none' (no SDPA call): what torch dispatched to, from the op names."""
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        forward_backward(layer, x, upstream, path)
    names = {event.key for event in profiler.key_averages()}
    return "flash" if FLASH_OP in names else "math" if MATH_OP in names else "none"


def profiled_peak_bytes(layer: SelfAttention, x: torch.Tensor, upstream: torch.Tensor, path: str) -> int:
    """Peak of the CPU bytes torch held on top of the starting point during one forward + backward."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        forward_backward(layer, x, upstream, path)
    # The raw records: profiler.events() folds allocations into their enclosing ops.
    records = [event for event in profiler.profiler.kineto_results.events() if event.name() == "[memory]"]
    live = peak = 0
    for record in sorted(records, key=lambda event: event.start_ns()):
        live += record.nbytes()  # negative for a free
        peak = max(peak, live)
    return peak


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def rss_growth_in_this_process(path: str, batch: int, side: int = 64) -> dict:
    """Peak RSS growth (bytes) of one forward + backward at side x side; call in a fresh process."""
    layer, x, upstream = attention_case(64, batch, side)
    small_layer, small_x, small_upstream = attention_case(64, batch, 16)
    for _ in range(2):  # first-call set-up (thread pool, kernels, allocator arenas) must not count
        forward_backward(small_layer, small_x, small_upstream, path)
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # resets VmHWM to the current RSS
        method = "VmHWM - VmRSS after clear_refs"
    except OSError:
        method = "VmHWM - VmRSS without a reset (may undercount)"
    baseline = _status_kib("VmRSS")
    forward_backward(layer, x, upstream, path)
    return {"path": path, "batch": batch, "rss_growth_bytes": max(_status_kib("VmHWM") - baseline, 0) * 1024,
            "method": method}


def rss_growth_per_path(batch: int) -> dict[str, dict]:
    """Every path's peak RSS growth, each in its own fresh Python, run side by side (memory, not time)."""
    children = {
        path: subprocess.Popen(
            [sys.executable, "-m", "benchmarks.attention_layer", path, str(batch), str(torch.get_num_threads())],
            cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for path in PATHS
    }
    results = {}
    for path, child in children.items():
        stdout, stderr = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"the RSS measurement of {path!r} failed:\n{stderr}")
        results[path] = json.loads(stdout.strip().splitlines()[-1])
    return results


def layer_timings(channels: int, batch: int, side: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per forward + backward of each path, in interleaved rounds (AB, BA, ...) after a warm-up."""
    layer, x, upstream = attention_case(channels, batch, side)
    seconds = {path: [] for path in PATHS}
    for round_index in range(rounds + 1):
        for path in PATHS if round_index % 2 == 0 else PATHS[::-1]:
            started = time.perf_counter()
            forward_backward(layer, x, upstream, path)
            if round_index > 0:  # round 0 is the warm-up
                seconds[path].append(time.perf_counter() - started)
    return seconds


if __name__ == "__main__":  # the RSS child: PATH BATCH THREADS
    torch.set_num_threads(int(sys.argv[3]))
    print(json.dumps(rss_growth_in_this_process(sys.argv[1], int(sys.argv[2]))))
