"""The studio under several users: click latency at human pace, and clicks per second at saturation.

    python -m benchmarks.bench_load [--checkpoint PATH] [--users 8] [--seconds 60] [--quick] [--concurrency N]

The studio is served on 127.0.0.1 by a child process built as launch.py builds it (this module with --serve),
so that the clients do not share its GIL. The users (load_users.py) speak Gradio's API as the page does.
Phases, each bounded in time and count:

1. one user at human pace (a click a second, a Generate every 10 s), for a reference: half of
   --single-seconds before phase 2 and half after, pooled;
2. --users users at the same pace for --seconds; targets: p95 click latency <= 1.5x the single user's,
   no errors, no answer from another session;
3. saturation: the same users clicking as fast as answers come, --saturation-seconds: clicks per second
   served (and one user alone the same way, for the p50 the issue compared against).

A click's latency runs from its request to its answer (files fetched afterwards are timed apart).

The p95 ratio is also given against one user clicking back to back, and the run measures how much slower
memory left untouched for a second is to touch again (a byte in each 4 KB page of 64 MB, hot and after 1 s
idle): on this project's virtual machine it costs ~10 µs a page against ~0.05, whatever the work done with
it, which makes a lone human-paced user's clicks several times slower than back-to-back ones. An
answer is from another session when its query table does not list exactly this user's own clicks (five
slots, a sixth click taking the oldest one's), or
its files are not in the folder of this user's earlier files, or that folder is another user's.
Prints a Markdown table, writes benchmarks/results/load.json (load averages included: the machine is shared).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .load_users import Studio, User, simulate

BENCHMARKS = Path(__file__).resolve().parent
REPOSITORY = BENCHMARKS.parent
RESULTS_PATH = BENCHMARKS / "results" / "load.json"


def default_checkpoint() -> Path:
    """The newest step_*.safetensors of the bundled faces32-sagan run."""
    found = sorted((REPOSITORY / "checkpoints" / "faces32-sagan").glob("step_*.safetensors"))
    if not found:
        raise SystemExit("no checkpoints/faces32-sagan/step_*.safetensors; pass --checkpoint")
    return found[-1]


def load() -> list[float]:
    """1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(seconds: list[float]) -> dict:
    """p50, p95, max and count, in milliseconds."""
    if not seconds:
        return {"n": 0}
    values = sorted(1e3 * s for s in seconds)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return {"p50": round(statistics.median(values), 1), "p95": round(p95, 1), "max": round(values[-1], 1),
            "n": len(values)}


# The server (child process) -----------------------------------------------------------------------------------

def serve(checkpoint: Path, port: int, concurrency: int | None, switch_interval: float | None) -> None:
    """Build the studio as launch.py does and serve it on 127.0.0.1:port until killed."""
    from sagan_viz.temp_folder import private_temp_folder

    if switch_interval is not None:  # to compare settings
        sys.setswitchinterval(switch_interval)

    with private_temp_folder():
        from sagan_viz.app import LAUNCH_SETTINGS, build_app

        demo = build_app(checkpoint.parent.parent, checkpoint=checkpoint, device="cpu")
        if concurrency is not None:  # to compare settings; the studio's own is build_app's
            demo.queue(default_concurrency_limit=concurrency)
        try:
            demo.launch(server_name="127.0.0.1", server_port=port, quiet=True, **LAUNCH_SETTINGS)
        except KeyboardInterrupt:
            pass


def start_server(checkpoint: Path, concurrency: int | None, switch_interval: float | None = None
                 ) -> tuple[subprocess.Popen, str]:
    """The child process serving the studio, and its URL once /config answers."""
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "benchmarks.bench_load", "--serve", str(port), "--checkpoint", str(checkpoint)]
    if concurrency is not None:
        command += ["--concurrency", str(concurrency)]
    if switch_interval is not None:
        command += ["--switch-interval", str(switch_interval)]
    process = subprocess.Popen(command, cwd=REPOSITORY, env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the studio's process ended before answering")
        try:
            if httpx.get(f"{url}/config", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise SystemExit("the studio did not answer within 120 s")


@dataclass
class PhaseRun:
    """What one stretch of simulated use left: its users, and the time and CPU it took."""

    crowd: list[User]
    seconds: float
    server_cpu: float
    client_cpu: float
    load_before: list[float]
    load_after: list[float]


def run_phase(url: str, studio: Studio, users: int, seconds: float, paced: bool, seed: int, server_pid: int) -> PhaseRun:
    """Simulate users for seconds; CPU time is counted apart from wall time, as the machine is shared."""
    load_before, started, server_cpu, client_cpu = load(), time.monotonic(), cpu_seconds(server_pid), time.process_time()
    crowd = asyncio.run(simulate(url, studio, users, seconds, paced, seed))
    return PhaseRun(crowd, time.monotonic() - started, cpu_seconds(server_pid) - server_cpu,
                    time.process_time() - client_cpu, load_before, load())


def summarise(runs: list[PhaseRun], paced: bool) -> dict:
    """One phase's summary, pooled over its runs (the one-user reference runs before and after the crowd)."""
    crowd = [user for run in runs for user in run.crowd]
    elapsed, server_cpu = sum(run.seconds for run in runs), sum(run.server_cpu for run in runs)
    clicks = [s for user in crowd for s in user.clicks]
    events = len(clicks) + sum(len(user.generates) for user in crowd)
    errors = [e for user in crowd for e in user.errors]
    return {
        "users": len(runs[0].crowd), "paced": paced, "seconds": round(elapsed, 1),
        "click_ms": summary(clicks), "files_ms": summary([s for user in crowd for s in user.files]),
        "generate_ms": summary([s for user in crowd for s in user.generates]),
        "clicks_per_second": round(len(clicks) / elapsed, 1),
        "server_cpu_ms_per_event": round(1e3 * server_cpu / max(1, events), 1),
        "server_cpu_share": round(server_cpu / elapsed, 2),
        "client_cpu_share": round(sum(run.client_cpu for run in runs) / elapsed, 2),
        "errors": len(errors), "error_examples": sorted(set(errors))[:5],
        "foreign_answers": sum(user.foreign for user in crowd),
        "load_before": runs[0].load_before, "load_after": runs[-1].load_after,
    }


def phase(url: str, studio: Studio, users: int, seconds: float, paced: bool, seed: int, server_pid: int) -> dict:
    """Run one phase and summarise it."""
    return summarise([run_phase(url, studio, users, seconds, paced, seed, server_pid)], paced)


def idle_memory_probe(rounds: int = 5) -> dict:
    """Microseconds to touch one byte in each 4 KB page of 64 MB (small pages) right after the previous touch
    and after 1 s idle (medians): what a click pays for every page of memory it reads after a pause."""
    import mmap

    import numpy as np

    size = 64 << 20
    mapping = mmap.mmap(-1, size)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        mapping.madvise(mmap.MADV_NOHUGEPAGE)
    values = np.frombuffer(mapping, dtype=np.uint8)
    values[:] = 1
    timings = {"hot_us_per_page": [], "after_1s_idle_us_per_page": []}
    for _ in range(rounds):
        for name, pause in (("hot_us_per_page", 0.0), ("after_1s_idle_us_per_page", 1.0)):
            time.sleep(pause)
            started = time.perf_counter()
            values[::4096].sum()
            timings[name].append(1e6 * (time.perf_counter() - started) / (size // 4096))
    del values
    mapping.close()
    return {name: round(statistics.median(times), 2) for name, times in timings.items()}


def report(results: dict) -> str:
    """The Markdown table."""
    single, crowd, saturated, alone = (results[k] for k in ("single", "crowd", "saturation", "saturation_single"))
    ratio = crowd["click_ms"]["p95"] / single["click_ms"]["p95"]
    rows = [
        "| phase | clicks | click p50 / p95 ms | files p50 ms | generate p50 ms | clicks/s | errors | foreign | load 1-min before → after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, result in (("1 user, human pace", single), (f"{crowd['users']} users, human pace", crowd),
                         ("1 user, back to back", alone), (f"{saturated['users']} users, back to back", saturated)):
        rows.append(
            f"| {name} | {result['click_ms']['n']} | {result['click_ms']['p50']} / {result['click_ms']['p95']} "
            f"| {result['files_ms'].get('p50')} | {result['generate_ms'].get('p50')} | {result['clicks_per_second']} "
            f"| {result['errors']} | {result['foreign_answers']} | {result['load_before'][0]} → {result['load_after'][0]} |")
    warm = crowd["click_ms"]["p95"] / alone["click_ms"]["p95"]
    probe = results.get("idle_memory")
    verdict = (f"p95 {crowd['users']} users ÷ 1 user = {ratio:.2f} (target ≤ 1.5: {'met' if ratio <= 1.5 else 'NOT met'}); "
               f"÷ 1 user back to back = {warm:.2f}; "
               f"errors {crowd['errors']}, foreign answers {crowd['foreign_answers']} (target 0, 0)")
    if probe:
        verdict += (f"\n\nIdle memory on this machine: touching a 4 KB page costs {probe['hot_us_per_page']} µs "
                    f"right after the last touch and {probe['after_1s_idle_us_per_page']} µs after 1 s idle.")
    return "\n".join(rows + ["", verdict])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: newest bundled faces32-sagan step")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the several-users paced phase")
    parser.add_argument("--single-seconds", type=float, default=30.0, help="length of the one-user paced phase")
    parser.add_argument("--saturation-seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=None,
                        help="override the studio's default_concurrency_limit (to compare settings)")
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="override the server's sys.setswitchinterval, seconds (to compare settings)")
    parser.add_argument("--quick", action="store_true", help="10 s phases; prints, never writes results")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    checkpoint = (args.checkpoint or default_checkpoint()).resolve()
    if args.serve is not None:
        serve(checkpoint, args.serve, args.concurrency, args.switch_interval)
        return
    if args.quick:
        args.seconds = args.single_seconds = args.saturation_seconds = 10.0
    import httpx

    process, url = start_server(checkpoint, args.concurrency, args.switch_interval)
    try:
        studio = Studio(httpx.get(f"{url}/config").json())
        phase(url, studio, 1, 5, paced=False, seed=0, server_pid=process.pid)  # warm-up: fonts, caches, the model loaded
        results = {
            "checkpoint": str(checkpoint.relative_to(REPOSITORY)) if checkpoint.is_relative_to(REPOSITORY) else str(checkpoint),
            "concurrency_override": args.concurrency, "switch_interval_override": args.switch_interval,
            "cpus": os.cpu_count(),
        }
        # The one-user reference is run half before and half after the crowd and pooled, so that the machine's
        # drift over the run (it is shared) weighs on both sides of the ratio alike.
        before = run_phase(url, studio, 1, args.single_seconds / 2, paced=True, seed=1, server_pid=process.pid)
        crowd = run_phase(url, studio, args.users, args.seconds, paced=True, seed=2, server_pid=process.pid)
        after = run_phase(url, studio, 1, args.single_seconds / 2, paced=True, seed=5, server_pid=process.pid)
        results |= {
            "single": summarise([before, after], paced=True),
            "crowd": summarise([crowd], paced=True),
            "saturation_single": phase(url, studio, 1, args.saturation_seconds / 2, paced=False, seed=3, server_pid=process.pid),
            "saturation": phase(url, studio, args.users, args.saturation_seconds, paced=False, seed=4, server_pid=process.pid),
        }
    finally:
        process.terminate()
        process.wait(timeout=60)
    results["p95_ratio"] = round(results["crowd"]["click_ms"]["p95"] / results["single"]["click_ms"]["p95"], 2)
    results["p95_ratio_to_back_to_back"] = round(
        results["crowd"]["click_ms"]["p95"] / results["saturation_single"]["click_ms"]["p95"], 2)
    results["idle_memory"] = idle_memory_probe()
    print(report(results))
    if not args.quick:
        RESULTS_PATH.write_text(json.dumps(results, indent=2) + "\n")
        print(f"written to {RESULTS_PATH.relative_to(REPOSITORY)}")


if __name__ == "__main__":
    main()
