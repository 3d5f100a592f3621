"""A hostile user's files: 300+ malformed inputs made from a tiny valid checkpoint, each refused with a
CheckpointError naming the file, within a second, without running code or allocating what the file claims.

Categories (the issue's findings): random bytes, truncations, corrupted header lengths and JSON, nested JSON,
huge numbers, wrong dtypes and shapes, poisoned values (NaN, inf, huge, zero u/v, negative variance, float16
labelled bfloat16), absurd configs (floats, bools, huge ints), pickles with payloads, special files (a symlink
to /proc/self/mem, a FIFO, devices), large sparse files and single bit flips in tensor data. The inputs are
made in loader_fuzz_corpus.py; this file holds the fixture and the tests.
"""
from __future__ import annotations

import json
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest
import torch
from loader_fuzz_corpus import (
    bf16_label_cases,
    bit_flip_cases,
    byte_cases,
    chosen_tensor,
    config_cases,
    join,
    metadata_cases,
    pickle_cases,
    sparse_files,
    special_files,
    split,
    tensor_cases,
    with_config,
    with_header,
    with_metadata,
    with_tensors,
)
from safetensors.torch import load as load_safetensors_bytes

from sagan_viz.checkpoint import (
    DIGEST_KEY,
    CheckpointError,
    build_networks_from,
    read_checkpoint,
    read_checkpoint_summary,
    save_checkpoint,
)
from sagan_viz.config import ModelConfig
from sagan_viz.state_layout import checkpoint_layout

SECONDS_PER_INPUT = 1.0




@pytest.fixture(scope="module")
def valid(tiny_checkpoint, tmp_path_factory) -> dict:
    """The tiny checkpoint's bytes (float32, with digest), a float16 copy, and its tensors."""
    folder = tmp_path_factory.mktemp("valid")
    contents = read_checkpoint(tiny_checkpoint)
    generator, generator_ema, discriminator = build_networks_from(contents)
    half = save_checkpoint(folder / "half.safetensors", config=contents.config, generator=generator,
                           generator_ema=generator_ema, discriminator=discriminator, step=contents.step,
                           wall_time_s=contents.wall_time_s, dataset=contents.dataset, history=contents.history,
                           training=contents.training, half=True)
    raw = tiny_checkpoint.read_bytes()
    return {"raw": raw, "half": half.read_bytes(), "tensors": load_safetensors_bytes(raw), "path": tiny_checkpoint}


def refusal(path: Path) -> tuple[str, float]:
    """('' when read_checkpoint refused path with a CheckpointError naming it, else what happened; seconds)."""
    begin = time.perf_counter()
    try:
        read_checkpoint(path)
        outcome = "loaded"
    except CheckpointError as error:
        outcome = "" if type(error) is CheckpointError and path.name in str(error) else f"message: {error}"
    except BaseException as error:  # noqa: BLE001 - anything else is the finding
        outcome = f"escaped as {type(error).__name__}: {str(error)[:100]}"
    return outcome, time.perf_counter() - begin


def test_every_malformed_input_is_refused_quickly_naming_the_file(valid, tmp_path, record_property):
    raw, marker = valid["raw"], tmp_path / "code-ran"
    written = byte_cases(raw) + config_cases(raw) + metadata_cases(raw) + tensor_cases(raw) + \
        bf16_label_cases(valid["half"]) + bit_flip_cases(raw, 40) + pickle_cases(marker, valid["tensors"])
    corpus = []
    for index, (category, name, content) in enumerate(written):
        path = tmp_path / f"case{index:03d}.safetensors"
        path.write_bytes(content)
        corpus.append((category, name, path))
    corpus += special_files(tmp_path / "special") + sparse_files(tmp_path / "sparse", raw)
    assert len(corpus) >= 300, len(corpus)

    failures, timings = [], []
    started = time.perf_counter()
    for category, name, path in corpus:
        outcome, seconds = refusal(path)
        if seconds > SECONDS_PER_INPUT:  # on a shared machine a stall can hit any input: it must not repeat
            outcome, seconds = refusal(path)
        timings.append((seconds, category, name))
        if outcome or seconds > SECONDS_PER_INPUT:
            failures.append(f"{category} / {name}: {outcome or f'took {seconds:.2f} s'}")
    total = time.perf_counter() - started
    slowest = max(timings)
    record_property("fuzz", f"{len(corpus)} inputs in {total:.1f} s, slowest {slowest[0] * 1000:.0f} ms ({slowest[2]})")
    print(f"\n{len(corpus)} malformed inputs refused in {total:.1f} s ({total / len(corpus) * 1000:.1f} ms each, "
          f"slowest {slowest[0] * 1000:.0f} ms: {slowest[1]} / {slowest[2]}); "
          + ", ".join(f"{category} {count}" for category, count in Counter(c for c, _, _ in corpus).items()))
    assert not failures, f"{len(failures)} of {len(corpus)} not refused as they should be:\n" + "\n".join(failures)
    assert not marker.exists(), "a pickle payload ran"
    assert total < 60


def test_the_corpus_control_loads(valid, tmp_path):
    # The builders themselves do not break a file: a header round trip and a digest reseal still load.
    for name, content in [("joined", with_header(valid["raw"], lambda header: None)),
                          ("resealed", with_tensors(valid["raw"], lambda tensors: None)),
                          ("metadata", with_metadata(valid["raw"], dataset="faces")),
                          ("half", valid["half"])]:
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(content)
        assert read_checkpoint(path).config == read_checkpoint(valid["path"]).config


def test_a_header_only_summary_refuses_header_damage_and_never_escapes(valid, tmp_path):
    raw = valid["raw"]
    for index, (category, name, content) in enumerate(byte_cases(raw) + config_cases(raw) + metadata_cases(raw)):
        path = tmp_path / f"summary{index:03d}.safetensors"
        path.write_bytes(content)
        try:
            read_checkpoint_summary(path)
        except CheckpointError as error:
            assert path.name in str(error), (category, name, str(error))
        else:  # a wrong digest value is only found when the data is read
            assert name.startswith(f"{DIGEST_KEY} = \"{'0' * 20}"), (category, name)


def peak_allocation(path: Path) -> tuple[int, str]:
    """(peak bytes Python allocated while read_checkpoint refused path, the message)."""
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError) as caught:
            read_checkpoint(path)
        return tracemalloc.get_traced_memory()[1], str(caught.value)
    finally:
        tracemalloc.stop()


def test_large_claims_allocate_almost_nothing(valid, tmp_path, record_property):
    """Claims of gigabytes (a header, a tensor, a config, a sparse file) are refused before anything is read."""
    raw = valid["raw"]
    header, data = split(raw)
    first = chosen_tensor(header)
    claims = {
        "tensor of 10^9 floats": with_header(raw, lambda h: h[first].update(shape=[10**9], data_offsets=[0, 4 * 10**9])),
        "g_channels 10^6": with_config(raw, g_channels=10**6),
        "num_classes 10^9": with_config(raw, num_classes=10**9),
        "z_dim 10^6": with_config(raw, z_dim=10**6),
        "g_channels 100,000": with_config(raw, g_channels=100_000),
    }
    paths = {}
    for name, content in claims.items():
        paths[name] = tmp_path / f"{name}.safetensors"
        paths[name].write_bytes(content)
    for name, sparse in [("9 GiB sparse, valid header", raw), ("9 GiB header length", (9 * 2**30).to_bytes(8, "little"))]:
        paths[name] = tmp_path / f"{name}.safetensors"
        with open(paths[name], "wb") as stream:
            stream.write(sparse)
            stream.truncate(9 * 2**30)
    # A config over the size cap (1.6e9 weights) in a sparse file whose header matches it exactly.
    big = ModelConfig(resolution=128, g_channels=256, d_channels=256, z_dim=128)
    paths["1.6e9 weights, sparse"] = sparse_matching(tmp_path / "big.safetensors", big, header["__metadata__"])
    measured = {}
    for name, path in paths.items():
        peak, message = peak_allocation(path)
        measured[name] = peak
        assert peak < 2 * len(raw) + 2**20, (name, peak, message)
    record_property("peak_bytes", measured)
    print("\npeak Python allocation while refusing: " + ", ".join(f"{n} {b / 1024:.0f} KiB" for n, b in measured.items()))


def sparse_matching(path: Path, config: ModelConfig, metadata: dict) -> Path:
    """A sparse file whose header describes exactly the tensors of config (all holes: zeros)."""
    header, offset = {"__metadata__": {**metadata, "model_config": json.dumps(config.to_dict())}}, 0
    header["__metadata__"].pop(DIGEST_KEY, None)
    for part, layout in checkpoint_layout(config).items():
        for key, spec in layout.items():
            size = (4 if spec.floating else 8) * int(torch.tensor(spec.shape).prod().item() if spec.shape else 1)
            header[f"{part}.{key}"] = {"dtype": "F32" if spec.floating else "I64", "shape": list(spec.shape),
                                       "data_offsets": [offset, offset + size]}
            offset += size
    start = join(header, b"")
    with open(path, "wb") as stream:
        stream.write(start)
        stream.truncate(len(start) + offset)
    return path


def test_a_sparse_file_matching_a_mid_size_config_reads_at_most_its_size(valid, tmp_path, record_property):
    """Holes that pass every header check are read once (no digest: the zero u vectors refuse it)."""
    metadata = split(valid["raw"])[0]["__metadata__"]
    path = sparse_matching(tmp_path / "mid.safetensors", ModelConfig(resolution=32, g_channels=64, d_channels=64,
                                                                     z_dim=128), metadata)
    started = time.perf_counter()
    peak, message = peak_allocation(path)
    seconds = time.perf_counter() - started
    size = path.stat().st_size
    assert "norm 0" in message and path.name in message, message
    assert peak < 2 * size, (peak, size)
    assert seconds < SECONDS_PER_INPUT * 5  # tracemalloc slows allocation; the plain read is ~10x faster
    record_property("mid_sparse", f"{size / 2**20:.0f} MiB file: peak {peak / 2**20:.0f} MiB, {seconds:.2f} s")
    print(f"\n{size / 2**20:.0f} MiB sparse file refused after reading it: peak {peak / 2**20:.0f} MiB, {seconds:.2f} s")
