"""The malformed inputs of test_loader_fuzz.py, made from a tiny valid checkpoint: each case is
(category, name, bytes) or (category, name, path), in the categories that file's docstring lists."""
from __future__ import annotations

import builtins
import json
import os
import pickle
import random
import re
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors_bytes

from sagan_viz.checkpoint import DIGEST_KEY, serialise_checkpoint
from sagan_viz.state_layout import SPECTRAL_U, SPECTRAL_V, SPECTRAL_WEIGHT

U, V, W = SPECTRAL_U, SPECTRAL_V, SPECTRAL_WEIGHT  # short: the cases name many spectral-norm tensors


# --- building malformed files from a valid one ----------------------------------------------------------------

def split(raw: bytes) -> tuple[dict, bytes]:
    """(header as a dict, data section) of safetensors bytes."""
    length = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + length]), raw[8 + length :]


def join(header: dict | str, data: bytes) -> bytes:
    """safetensors bytes from a header (a dict, or JSON text as given) and a data section."""
    text = (header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data


def with_header(raw: bytes, change) -> bytes:
    header, data = split(raw)
    change(header)
    return join(header, data)


def with_metadata(raw: bytes, **fields) -> bytes:
    """Metadata strings replaced (None deletes); the data section and its digest stay valid."""
    def change(header):
        for key, value in fields.items():
            if value is None:
                header["__metadata__"].pop(key, None)
            else:
                header["__metadata__"][key] = value
    return with_header(raw, change)


def with_config_text(raw: bytes, text: str) -> bytes:
    return with_metadata(raw, model_config=text)


def with_config(raw: bytes, **fields) -> bytes:
    config = json.loads(split(raw)[0]["__metadata__"]["model_config"])
    return with_config_text(raw, json.dumps({**config, **fields}))


def with_tensors(raw: bytes, change) -> bytes:
    """Tensors altered and the digest recomputed, as a hostile writer would: the value checks must catch it."""
    tensors = load_safetensors_bytes(raw)
    change(tensors)
    return serialise_checkpoint(tensors, split(raw)[0]["__metadata__"])


def set_tensor(name: str, make):
    def change(tensors):
        tensors[name] = make(tensors[name])
    return change


def flip_bit(raw: bytes, position: int, bit: int) -> bytes:
    changed = bytearray(raw)
    changed[position] ^= 1 << bit
    return bytes(changed)


class RunsCodeWhenUnpickled:
    """Unpickling calls open(marker, 'w'): the marker file appearing means code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def random_bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


# --- the corpus -----------------------------------------------------------------------------------------------

def byte_cases(raw: bytes) -> list[tuple[str, str, bytes]]:
    """(category, name, content): everything that is a byte string in a regular file."""
    header, data = split(raw)
    header_end = len(raw) - len(data)
    cases = [("random bytes", f"{size} random bytes #{seed}", random_bytes(seed, size))
             for seed, size in enumerate([0, 1, 7, 8, 9, 64, 100, 1000, 4096, 65536] * 2)]
    cases += [("random bytes", f"length {length} then random", length.to_bytes(8, "little") + random_bytes(length, 300))
              for length in (1, 2, 16, 100, 250, 292)]
    cases += [("random bytes", "text file", b"These are my training notes.\n" * 40),
              ("random bytes", "zeros", bytes(5000)), ("random bytes", "0xff", b"\xff" * 5000)]
    offsets = sorted({*range(0, 40, 3), *range(0, header_end, max(1, header_end // 30)),
                      *range(header_end, len(raw), max(1, len(data) // 40)), header_end - 1, header_end + 1, len(raw) - 1})
    cases += [("truncation", f"cut at {cut}", raw[:cut]) for cut in offsets if cut < len(raw)]
    cases += [("truncation", "one byte appended", raw + b"\0"), ("truncation", "a page appended", raw + bytes(4096))]
    lengths = [0, 1, 7, header_end - 9, header_end - 7, header_end, len(raw) - 8, len(raw), len(raw) + 1,
               100 * 2**20 + 1, 2**32, 2**63, 2**64 - 1]
    cases += [("header length", f"header length {length}", length.to_bytes(8, "little") + raw[8:]) for length in lengths]
    rng = random.Random(1)
    # Random bytes over the header's tensor table (metadata comes first; its strings are not covered by the
    # digest, so damage inside, say, a history number would be a different value, not a malformed file).
    table_start = 8 + len('{"__metadata__":') + len(json.dumps(header["__metadata__"], separators=(",", ":")))
    for index in range(25):
        position = rng.randrange(table_start, header_end - 4)
        cases.append(("header JSON", f"header bytes scrambled #{index}",
                      raw[:position] + random_bytes(100 + index, 4) + raw[position + 4 :]))
    cases += [("header JSON", name, join(text, data)) for name, text in header_json_cases(header)]
    cases += [("nested JSON", name, join(text, data)) for name, text in nested_cases(header)]
    cases += [("huge numbers", name, join(text, data)) for name, text in huge_number_cases(header)]
    return cases


def chosen_tensor(header: dict) -> str:
    """A tensor with at least two dimensions that does not start the data section."""
    return max((key for key in header if key != "__metadata__" and len(header[key]["shape"]) >= 2),
               key=lambda key: header[key]["data_offsets"][0])


def header_json_cases(header: dict) -> list[tuple[str, str]]:
    """Headers that are JSON, or nearly, but not a safetensors header."""
    first = chosen_tensor(header)
    entry = header[first]

    def variant(change) -> str:
        copy = json.loads(json.dumps(header))
        change(copy)
        return json.dumps(copy)

    def set_entry(**fields):
        return variant(lambda h: h[first].update(fields))

    return [
        ("header is a list", "[1, 2, 3]"), ("header is a string", '"checkpoint"'), ("header is null", "null"),
        ("header not UTF-8", '{"a": "\udcff"}'.encode("utf-8", "surrogatepass").decode("latin-1")),
        ("header unterminated", json.dumps(header)[:-1]), ("header with NaN", '{"x": NaN}'),
        ("entry missing dtype", variant(lambda h: h[first].pop("dtype"))),
        ("entry with extra field", set_entry(extra=1)), ("entry is a list", variant(lambda h: h.update({first: [1]}))),
        ("unknown dtype", set_entry(dtype="F128")), ("dtype not a string", set_entry(dtype=4)),
        ("negative shape", set_entry(shape=[-1] + entry["shape"][1:])), ("float shape", set_entry(shape=[1.5])),
        ("bool shape", set_entry(shape=[True] * len(entry["shape"]))), ("shape of 9 dims", set_entry(shape=[1] * 9)),
        ("shape a string", set_entry(shape="16")),
        ("offsets reversed", set_entry(data_offsets=entry["data_offsets"][::-1])),
        ("offsets of 3", set_entry(data_offsets=entry["data_offsets"] + [0])),
        ("offsets negative", set_entry(data_offsets=[-4, entry["data_offsets"][1]])),
        ("offsets shifted", set_entry(data_offsets=[o + 4 for o in entry["data_offsets"]])),
        ("offsets overlap", set_entry(data_offsets=[0, entry["data_offsets"][1] - entry["data_offsets"][0]])),
        ("metadata a list", variant(lambda h: h.update({"__metadata__": ["x"]}))),
        ("metadata value a number", variant(lambda h: h["__metadata__"].update(step=3))),
        ("metadata value a dict", variant(lambda h: h["__metadata__"].update(model_config={"resolution": 32}))),
        ("duplicate tensor entry", json.dumps(header)[:-1] + f', "{first}": ' + json.dumps(entry) + "}"),
    ]


def nested_cases(header: dict) -> list[tuple[str, str]]:
    metadata = header["__metadata__"]

    def with_meta(**fields) -> str:
        return json.dumps({**header, "__metadata__": {**metadata, **fields}})

    return [
        ("header nested 100,000 deep", '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        ("header nested 2,000 deep in objects", '{"a": ' + '{"b": ' * 2000 + "1" + "}" * 2001),
        ("entry shape nested", json.dumps(header).replace('"shape": [', '"shape": [' + "[" * 5000, 1)),
        ("config nested 100,000 deep", with_meta(model_config="[" * 100_000 + "]" * 100_000)),
        ("history nested 100,000 deep", with_meta(history='{"step": ' + "[" * 100_000 + "]" * 100_000 + "}")),
        ("training nested", with_meta(training='{"a": ' + "[" * 50_000 + "]" * 50_000 + "}")),
    ]


def huge_number_cases(header: dict) -> list[tuple[str, str]]:
    metadata, text = header["__metadata__"], json.dumps(header)
    digits = "9" * 5001
    config = json.loads(metadata["model_config"])

    def with_meta(**fields) -> str:
        return json.dumps({**header, "__metadata__": {**metadata, **fields}})

    def config_with(field: str, number: str) -> str:
        return with_meta(model_config=json.dumps({**config, field: "@"}).replace('"@"', number))

    return [
        ("5,001-digit shape", re.sub(r'"shape": \[[0-9, ]*\]', f'"shape": [{digits}]', text, count=1)),
        ("5,001-digit offset", re.sub(r'"data_offsets": \[[0-9]+,', f'"data_offsets": [{digits},', text, count=1)),
        ("40-digit offset", re.sub(r'"data_offsets": \[[0-9]+,', f'"data_offsets": [{"9" * 40},', text, count=1)),
        ("21-digit offset end", re.sub(r'("data_offsets": \[[0-9]+, )[0-9]+\]', rf'\g<1>{"1" * 21}]', text, count=1)),
        ("5,001-digit g_channels", config_with("g_channels", digits)),
        ("5,001-digit z_dim", config_with("z_dim", "1" + "0" * 5000)),
        ("1e400 resolution", config_with("resolution", "1e400")),
        ("5,001-digit step", with_meta(step=digits)),
        ("1e400 wall time", with_meta(wall_time_s="1e400")),
        ("5,001-digit history", with_meta(history=json.dumps({"step": ["@"]}).replace('"@"', digits))),
        ("-5,001-digit num_classes", config_with("num_classes", "-" + digits)),
    ]


def config_cases(raw: bytes) -> list[tuple[str, str, bytes]]:
    """Configs that are wrong in type, in range, or for the tensors the file holds."""
    fields = {
        "resolution": [32.0, "32", True, None, [32], 48, 0, -32, 256, 10**6],
        "g_channels": [16.5, 16.0, True, False, "16", None, 0, -16, 10**5, 10**6, 10**9, 10**30],
        "d_channels": [16.0, True, 10**6, -1],
        "z_dim": [16.0, True, 10**6, 0, 4097, [16]],
        "num_classes": [10**9, 100_001, -1, 3.0, True, 5, 1],
        "image_channels": [3.0, 0, 5, 10**6, True],
        "g_attention": [[16.0], [True], ["16"], [16, 16], [64], [3], 16, "16", None, {"16": 1}, [[16]]],
        "d_attention": [[8.5], [32], [16, 16]],
        "attention_variant": [3, None, "flash", ["paper"]],
    }
    cases = [("absurd config", f"{field} = {json.dumps(value)[:30]}", with_config(raw, **{field: value}))
             for field, values in fields.items() for value in values]
    cases += [("absurd config", "unknown field", with_config(raw, colour="red")),
              ("absurd config", "config is a list", with_config_text(raw, "[32, 16]")),
              ("absurd config", "config is a number", with_config_text(raw, "32")),
              ("absurd config", "config not JSON", with_config_text(raw, "{resolution: 32")),
              ("absurd config", "config missing", with_metadata(raw, model_config=None)),
              ("absurd config", "another valid architecture", with_config(raw, resolution=64)),
              ("absurd config", "official variant", with_config(raw, attention_variant="official")),
              ("absurd config", "no attention", with_config(raw, g_attention=[], d_attention=[])),
              # Valid configs of big networks: refused from the header, never built (it took 21 s and 4 GB).
              ("absurd config", "1024 channels at 128x128", with_config(raw, resolution=128, g_channels=1024,
                                                                      d_channels=1024, z_dim=4096, num_classes=100_000)),
              ("absurd config", "256 channels at 64x64", with_config(raw, resolution=64, g_channels=256, d_channels=256)),
              ("absurd config", "64 channels, 1,000 classes", with_config(raw, g_channels=64, num_classes=1000))]
    return cases


def metadata_cases(raw: bytes) -> list[tuple[str, str, bytes]]:
    values = {
        "format": [None, "pt", ""], "version": [None, "2", "0", "1.0"], "step": ["twelve", "-1", "1.5", ""],
        "wall_time_s": ["nan", "inf", "-3", "fast"], "dataset": [None],
        "history": ["{not json", "[]", '{"step": [0, 1], "loss_D": [1]}', '{"step": "all"}', '{"gamma": []}',
                    '{"step": [0], "gamma": {"G.attn0": ["x"]}}', '{"step": [true]}'],
        "training": ["[]", "{bad", "3"], DIGEST_KEY: ["", "abc", "0" * 63, "Z" * 64, "0" * 64],
    }
    return [("metadata", f"{field} = {json.dumps(value)[:30]}", with_metadata(raw, **{field: value}))
            for field, options in values.items() for value in options]


def tensor_cases(raw: bytes) -> list[tuple[str, str, bytes]]:
    """Well-formed files (digest recomputed) whose tensors have the wrong dtype, shape, name or values."""
    names = list(load_safetensors_bytes(raw))
    linear, gamma, var = "G.linear" + W, "D.stages.1.gamma", "G.output_norm.running_var"
    conv, count = "G_ema.stages.0.conv1" + W, "G.output_norm.num_batches_tracked"
    structure = [
        ("float64", set_tensor(linear, lambda t: t.double())), ("int32 bits", set_tensor(conv, lambda t: t.view(torch.int32))),
        ("uint8", set_tensor(gamma, lambda t: t.to(torch.uint8))), ("bool", set_tensor(gamma, lambda t: t > 0)),
        ("count as float", set_tensor(count, lambda t: t.float())), ("count as int32", set_tensor(count, lambda t: t.int())),
        ("transposed", set_tensor(linear, lambda t: t.t().contiguous())), ("extra dim", set_tensor(gamma, lambda t: t[None])),
        ("scalar", set_tensor(gamma, lambda t: t[0])), ("empty", set_tensor(var, lambda t: t[:0])),
        ("one row more", set_tensor(linear, lambda t: torch.cat([t, t[:1]]))),
        ("u too long", set_tensor("D.linear" + U, lambda t: torch.cat([t, t]))),
        ("missing", lambda tensors: tensors.pop(conv)), ("renamed", lambda tensors: tensors.update(
            {"D.linear.renamed": tensors.pop("D.linear" + W)})),
        ("stray part", lambda tensors: tensors.update({"E.weight": torch.zeros(2)})),
        ("no part", lambda tensors: tensors.update({"weight": torch.zeros(2)})),
        ("G_ema missing entirely", lambda tensors: [tensors.pop(k) for k in names if k.startswith("G_ema.")]),
    ]
    float_names = [name for name in names if not name.endswith("num_batches_tracked")]
    poisons = [("NaN", float("nan")), ("inf", float("inf")), ("-inf", float("-inf")), ("3e38", 3e38), ("1e9", 1e9)]
    values = [(f"{label} in {name}", set_tensor(name, lambda t, v=value: torch.full_like(t, v)))
              for index, (label, value) in enumerate(poisons * 5) for name in [float_names[(index * 37) % len(float_names)]]]
    values += [(f"one NaN in {conv}", set_tensor(conv, lambda t: t.flatten().index_fill(0, torch.tensor([3]), float("nan")).view_as(t)))]
    spectral = [name for name in names if name.endswith(U) or name.endswith(V)]
    values += [(f"zero {name}", set_tensor(name, torch.zeros_like)) for name in spectral[:: max(1, len(spectral) // 8)]]
    values += [(f"doubled {name}", set_tensor(name, lambda t: 2 * t)) for name in spectral[1:6]]
    values += [(f"negative running_var {name}", set_tensor(name, lambda t: -t - 1))
               for name in names if name.endswith("running_var")][:5]
    values += [("negative count", set_tensor(count, lambda t: t - 10**6)),
               ("all-zero weight", set_tensor(conv, torch.zeros_like)),
               ("all-zero linear", set_tensor(linear, torch.zeros_like)),
               ("negated weight", set_tensor(linear, lambda t: -t))]
    return [("dtype or shape", f"{label}", with_tensors(raw, change)) for label, change in structure] + \
        [("poisoned values", label, with_tensors(raw, change)) for label, change in values]


def bf16_label_cases(half_raw: bytes) -> list[tuple[str, str, bytes]]:
    """A float16 file whose dtype labels say bfloat16: same bytes (the digest still matches), other numbers."""
    def relabel(header, only=None):
        for name, entry in header.items():
            if name != "__metadata__" and entry["dtype"] == "F16" and (only is None or name in only):
                entry["dtype"] = "BF16"

    names = [n for n in split(half_raw)[0] if n != "__metadata__"]
    cases = [("poisoned values", "float16 labelled BF16 (all)", with_header(half_raw, relabel))]
    cases += [("poisoned values", f"float16 labelled BF16 ({name})", with_header(half_raw, lambda h, n=name: relabel(h, {n})))
              for name in names if name.endswith((U, V))][:4]
    return cases


def bit_flip_cases(raw: bytes, count: int) -> list[tuple[str, str, bytes]]:
    _, data = split(raw)
    start, rng = len(raw) - len(data), random.Random(7)
    positions = [(rng.randrange(start, len(raw)), rng.randrange(8)) for _ in range(count)]
    return [("bit flip", f"bit {bit} of byte {position}", flip_bit(raw, position, bit)) for position, bit in positions]


def pickle_cases(marker: Path, tensors: dict) -> list[tuple[str, str, bytes]]:
    payload = RunsCodeWhenUnpickled(marker)
    saved = []
    for value in ({"G.linear.bias": payload}, payload, tensors):
        buffer = __import__("io").BytesIO()
        torch.save(value, buffer)
        saved.append(buffer.getvalue())
    return [("pickle", "torch.save with a payload", saved[0]), ("pickle", "torch.save of a payload", saved[1]),
            ("pickle", "torch.save of a state dict", saved[2]), ("pickle", "pickle protocol 0", pickle.dumps(payload, 0)),
            ("pickle", "pickle protocol 5", pickle.dumps(payload, 5))]


def special_files(folder: Path) -> list[tuple[str, str, Path]]:
    """(category, name, path) of files that are not regular files, or that live in /proc and /dev."""
    folder.mkdir()
    links = {"link to proc self mem.safetensors": "/proc/self/mem", "link to dev zero.safetensors": "/dev/zero",
             "link to dev urandom.safetensors": "/dev/urandom", "dangling link.safetensors": str(folder / "nowhere"),
             "link loop.safetensors": str(folder / "link loop.safetensors"),
             "link to proc self environ.safetensors": "/proc/self/environ"}
    for name, target in links.items():
        (folder / name).symlink_to(target)
    os.mkfifo(folder / "fifo.safetensors")
    (folder / "a folder.safetensors").mkdir()
    paths = [folder / name for name in [*links, "fifo.safetensors", "a folder.safetensors"]]
    return [("special file", path.name, path) for path in paths] + \
        [("special file", "/dev/null", Path("/dev/null")), ("special file", "/proc/self/mem", Path("/proc/self/mem"))]


def sparse_files(folder: Path, raw: bytes) -> list[tuple[str, str, Path]]:
    """9 GiB files that take no disk: valid header then holes, holes only, a 9 GiB header length."""
    folder.mkdir()
    size = 9 * 2**30
    contents = {"valid header then 9 GiB of holes": raw, "9 GiB of holes": b"",
                "header length 9 GiB": (size - 8).to_bytes(8, "little") + b"{",
                "header length 200 MiB": (200 * 2**20).to_bytes(8, "little") + b'{"a":'}
    paths = []
    for name, start in contents.items():
        path = folder / f"{name}.safetensors"
        with open(path, "wb") as stream:
            stream.write(start)
            stream.truncate(size)
        paths.append(path)
    return [("large sparse file", path.name, path) for path in paths]
