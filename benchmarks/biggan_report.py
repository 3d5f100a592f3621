"""bench_biggan.py's Markdown: the headline table (measurement | value | target | met), then the details."""
from __future__ import annotations

MB = 1e6


def verdict(ok: bool) -> str:
    """'yes', or a bold 'no'."""
    return "yes" if ok else "**no**"


def seconds(entry: dict) -> str:
    """'0.251 s (0.243–0.262)' from a spread."""
    return f"{entry['median_s']:.3f} s ({entry['min_s']:.3f}–{entry['max_s']:.3f})"


def milliseconds(entry: dict) -> str:
    """'63.1 ms (60.2–70.0)', or '0.0451 ms (0.0377–0.054)', from a spread: three significant digits."""
    return f"{1e3 * entry['median_s']:.3g} ms ({1e3 * entry['min_s']:.3g}–{1e3 * entry['max_s']:.3g})"


def header(results: dict) -> str:
    """Machine, versions, model, load average and wall time in one line."""
    model = results["model"]
    return (f"{results['machine']} · {results['cpus']} CPUs · torch {results['torch']} · {results['threads']} thread · "
            f"gradio {results['studio']['gradio']} · BigGAN-deep {model['output_dim']}px, channel width "
            f"{model['channel_width']}, {model['num_classes']} classes, random weights "
            f"({model['weights_bytes'] / MB:.0f} MB file) · load average (1 min) {results['load_average_start'][0]} "
            f"at start, {results['load_average_end'][0]} at end · {results['wall_s']:.0f} s"
            + (" · --quick: smoke run, not a result" if results["quick"] else ""))


def main_rows(results: dict, memory_target: float, ratio_target: float) -> list[str]:
    """The headline table."""
    load, generate, beta = results["load"], results["generate"], results["beta"]
    fixed, default = results["memory"]["fixed_mmap_threshold"], results["memory"]["glibc_default"]
    server, browser = results["studio"]["server_side"], results["studio"]["browser"]
    ms, ratio = browser["ms"], browser["ratio_to"]
    counted, rss = fixed["counted_bytes_per_generation"], fixed["rss_growth_bytes_per_generation"]
    rows = [
        "| measurement | value | target | met |", "|---|---|---|---|",
        f"| 1. load `sagan_viz.load_checkpoint(folder, 'cpu')`, median of {len(load['ours']['runs'])} "
        f"| {seconds(load['ours'])} | – | – |",
        f"| 1. the reference `BigGAN.from_pretrained(folder)`; ratio ours ÷ reference "
        f"| {seconds(load['reference'])}; **{load['ratio']:.2f}×** | – | – |",
        f"| 2. `model.generate(seed, label=207, truncation=0.4)`, median of {len(generate['ours']['runs'])} "
        f"| {seconds(generate['ours'])} | – | – |",
        f"| 2. the reference forward alone (eval, no_grad); ratio ours ÷ reference "
        f"| {seconds(generate['reference_forward'])}; **{generate['ratio']:.2f}×** | – | – |",
        f"| 3. β of {beta['layer']}, whole {beta['shape'][0]}×{beta['shape'][1]} matrix ({beta['bytes'] / MB:.1f} MB) "
        f"| {milliseconds(beta['whole'])} | – | – |",
        f"| 3. one β row, first on an image (computes g(x), f(x)) / later "
        f"| {milliseconds(beta['first_row'])} / {milliseconds(beta['row'])} | – | – |",
        f"| 4. memory a kept Generation holds after a click, counted (tensor storages, arrays) "
        f"| {counted / MB:.2f} MB | ≤ {memory_target / MB:.0f} MB | {verdict(counted <= memory_target)} |",
        f"| 4. RSS growth per generation, {fixed['generations']} kept (fixed mmap threshold; glibc default) "
        f"| {rss / MB:.2f} MB; {default['rss_growth_bytes_per_generation'] / MB:.2f} MB "
        f"| ≤ {memory_target / MB:.0f} MB | {verdict(max(rss, default['rss_growth_bytes_per_generation']) <= memory_target)} |",
        f"| 5. server: `InspectTab.click` callback, {server['clicks']} clicks, 1–5 queries: p50 / p95 "
        f"| {server['callback_ms']['p50']:.1f} / {server['callback_ms']['p95']:.1f} ms | – | – |",
        f"| 5. server: callback + Gradio's postprocessing p50 / p95 "
        f"| {server['total_ms']['p50']:.1f} / {server['total_ms']['p95']:.1f} ms | – | – |",
        f"| 5. Chromium: click → figure (and its markers) on screen, studio p50 / p95 ({browser['pairs']} clicks per app) "
        f"| {ms['studio']['p50']:.0f} / {ms['studio']['p95']:.0f} ms | – | – |",
        f"| 5. same, trivial Gradio app returning a figure of the same size p50 / p95 "
        f"| {ms['trivial']['p50']:.0f} / {ms['trivial']['p95']:.0f} ms | – | – |",
        f"| 5. ratio studio ÷ trivial, p50 (median of per-click ratios {ratio['trivial']['per_click_median']:.2f}×) "
        f"| **{ratio['trivial']['p50']:.2f}×** | ≤ {ratio_target}× | {verdict(ratio['trivial']['p50'] <= ratio_target)} |",
        f"| 5. ratio studio ÷ trivial without its loading overlay, p50 "
        f"| {ratio['trivial_no_overlay']['p50']:.2f}× | – | – |",
        f"| 5. trivial app returning PNG files written beforehand (no encoding on click) p50 / p95; ratio studio ÷ it "
        f"| {ms['trivial_files']['p50']:.0f} / {ms['trivial_files']['p95']:.0f} ms; "
        f"{ratio['trivial_files']['p50']:.2f}× | – | – |",
    ]
    return rows


def detail_lines(results: dict) -> list[str]:
    """Where the time and the bytes go."""
    generate, fixed = results["generate"], results["memory"]["fixed_mmap_threshold"]
    server = results["studio"]["server_side"]
    figure = results["figure_pixels"]
    by_count = ", ".join(f"{count}: {value:.0f}" for count, value in server["total_p50_ms_by_queries"].items()
                         if value is not None)
    parts = ", ".join(f"{name} {value:.1f}" for name, value in server["callback_parts_p50_ms"].items())
    kept = ", ".join(f"{name} {size / MB:.3f}" for name, size in fixed["breakdown_bytes"].items())
    ops = ", ".join(f"{op['op']} {op['self_ms']:.0f} ms ({op['calls']}×)" for op in results["generate_profile"][:6])
    loads = "; ".join(f"{name} {entry['start'][0]}→{entry['end'][0]}" for name, entry in results["load_average"].items())
    return [
        f"- Same image as the reference: max |ours − reference| = {generate['max_abs_image_difference']:.1e}.",
        f"- β rows peak at a median {results['beta']['row_max_over_uniform_median']:.1f}× uniform (the random "
        f"model's query and key projections are scaled up so that its rows peak like a trained layer's and the "
        f"studio draws arrows: biggan_model.py).",
        f"- One generate, top ops by self CPU time: {ops}.",
        f"- A kept Generation (MB): {kept}; {fixed['counted_buffers_per_generation']} buffers; "
        f"{fixed['counted_bytes_before_click'] / MB:.2f} MB before its first click, unchanged after reading the "
        f"whole β ({fixed['counted_bytes_after_reading_whole_beta'] / MB:.2f} MB); tracemalloc sees "
        f"{fixed['tracemalloc_growth_bytes_per_generation'] / 1e3:.1f} kB of it (torch's allocator is invisible "
        f"to it); one generate's transient peak {fixed['transient_peak_of_one_generate_bytes'] / MB:.0f} MB.",
        f"- Studio figure for this model: {figure['1'][0]}×{figure['1'][1]} px with one query, "
        f"{figure['5'][0]}×{figure['5'][1]} with five.",
        f"- Server click p50 (callback + postprocessing) by queries present, ms: {by_count}.",
        f"- Inside the callback, p50 ms: {parts}.",
        f"- Load average (1 min) at the start → end of each part: {loads}.",
    ]


def report(results: dict, memory_target: float = 20e6, ratio_target: float = 1.2) -> str:
    """The header line, the table, and the details."""
    return "\n".join([header(results), "", *main_rows(results, memory_target, ratio_target), "",
                      *detail_lines(results)])
