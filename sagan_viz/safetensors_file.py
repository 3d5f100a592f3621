"""A bounded reader of the safetensors layout: nothing is read or allocated before the file has proved its size.

Layout: an 8-byte little-endian header length N, N bytes of JSON ({name: {dtype, shape, data_offsets}} and an
optional "__metadata__": {str: str}), then the tensors' bytes back to back. The reader refuses special files
(FIFOs, devices, /proc, /sys), caps the header (size, JSON nesting, number length), checks that the tensors'
offsets tile the data exactly, and reads tensor data only when asked, hashing it as it goes.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch

MAX_HEADER_BYTES = 100 * 2**20  # a checkpoint's header is its config and history: ~1 MB for a 100k-step run
MAX_NUMBER_DIGITS = 30  # in any JSON this project reads: sizes, offsets, steps (Python's own limit is 4,300)
MAX_DIMENSIONS = 8
SPECIAL_ROOTS = ("/proc", "/sys", "/dev")  # files there are not data: /proc/self/mem, devices, kernel tables
DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
               "BOOL": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}
TORCH_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
                "BOOL": torch.bool}
READ_CHUNK = 16 * 2**20


class CheckpointError(Exception):
    """A file that cannot be loaded as a checkpoint; the message names it and why."""


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as the header describes it; begin and end are offsets into the data section."""

    name: str
    dtype: str  # safetensors' name, e.g. "F16"
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def torch_dtype(self) -> torch.dtype | str:
        """The torch dtype, or the safetensors name where torch has none."""
        return TORCH_DTYPES.get(self.dtype, self.dtype)


@dataclass(frozen=True)
class SafetensorsHeader:
    """A parsed, checked header: metadata strings and the tensor table."""

    metadata: dict[str, str]
    tensors: dict[str, TensorEntry]
    data_start: int  # file offset of the data section


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise ValueError(f"a number with {len(text.lstrip('-'))} digits")
    return int(text)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    # json keeps the last of two equal keys, other parsers the first: one file, two readings. Refuse it.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("a key appears twice in one object")
    return result


def parse_json(text: str | bytes, allow_nan: bool = False):
    """json.loads with numbers of at most MAX_NUMBER_DIGITS digits and no repeated keys; ValueError otherwise.

    Nesting is bounded by the interpreter: the C parser raises RecursionError, reported here as ValueError.
    """
    try:
        return json.loads(text, parse_int=_bounded_int, object_pairs_hook=_unique_keys,
                          parse_constant=None if allow_nan else _no_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _check_regular(path: Path, status: os.stat_result) -> None:
    if not stat.S_ISREG(status.st_mode):
        kind = "a folder" if stat.S_ISDIR(status.st_mode) else "a FIFO" if stat.S_ISFIFO(status.st_mode) \
            else "a device or socket"
        raise CheckpointError(f"{path}: {kind}, not a regular file")


@contextmanager
def open_regular_file(path: Path) -> Iterator[tuple[BinaryIO, int]]:
    """(stream, size) of a regular file; CheckpointError for a missing, special or /proc, /sys, /dev file."""
    try:
        resolved = path.resolve(strict=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except (OSError, RuntimeError) as error:  # a symlink loop, a permission problem
        raise CheckpointError(f"{path}: cannot be opened ({error})") from None
    if any(resolved == Path(root) or Path(root) in resolved.parents for root in SPECIAL_ROOTS):
        raise CheckpointError(f"{path}: refers to {resolved}, a special system file, not a checkpoint")
    try:
        _check_regular(path, os.stat(resolved))  # before opening: opening a device can have effects
        # O_NONBLOCK: a FIFO swapped in after the check must not wait for a writer; fstat below catches it.
        descriptor = os.open(resolved, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        raise CheckpointError(f"{path}: cannot be opened ({error.strerror or error})") from None
    try:
        status = os.fstat(descriptor)
        _check_regular(path, status)
        with os.fdopen(descriptor, "rb", buffering=0) as stream:
            descriptor = None
            yield stream, status.st_size
    finally:
        if descriptor is not None:
            os.close(descriptor)


def read_exactly(path: Path, stream: BinaryIO, buffer: bytearray | memoryview) -> None:
    """Fill buffer from stream; CheckpointError when the file ends first (it changed while being read)."""
    view, filled = memoryview(buffer), 0
    while filled < len(view):
        count = stream.readinto(view[filled : filled + READ_CHUNK])
        if not count:
            raise CheckpointError(f"{path}: truncated while being read (the file changed or shrank)")
        filled += count


def _shape(value) -> tuple[int, ...] | None:
    if not isinstance(value, list) or len(value) > MAX_DIMENSIONS:
        return None
    if not all(isinstance(size, int) and not isinstance(size, bool) and size >= 0 for size in value):
        return None
    return tuple(value)


def _entry(path: Path, name: str, value) -> TensorEntry:
    if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data_offsets"}:
        raise CheckpointError(f"{path}: tensor {name!r} has a malformed entry in the header")
    dtype, shape, offsets = value["dtype"], _shape(value["shape"]), value["data_offsets"]
    if dtype not in DTYPE_SIZES:
        raise CheckpointError(f"{path}: tensor {name!r} has an unknown dtype {dtype!r}")
    if shape is None:
        raise CheckpointError(f"{path}: tensor {name!r} has an impossible shape {value['shape']!r}")
    if _shape(offsets) is None or len(offsets) != 2 or offsets[0] > offsets[1]:
        raise CheckpointError(f"{path}: tensor {name!r} has impossible data offsets {offsets!r}")
    needed = math.prod(shape) * DTYPE_SIZES[dtype]
    if offsets[1] - offsets[0] != needed:
        raise CheckpointError(f"{path}: tensor {name!r} spans {offsets[1] - offsets[0]} bytes, "
                              f"its shape {list(shape)} of {dtype} needs {needed}")
    return TensorEntry(name, dtype, shape, offsets[0], offsets[1])


def _check_tiling(path: Path, tensors: dict[str, TensorEntry], data_size: int) -> None:
    """The tensors must cover the data section exactly, back to back, as safetensors writes them."""
    covered = 0
    for entry in sorted(tensors.values(), key=lambda entry: (entry.begin, entry.end)):
        if entry.begin != covered:
            raise CheckpointError(f"{path}: tensor {entry.name!r} starts at byte {entry.begin} of the data, "
                                  f"expected {covered}: overlapping or missing tensor data")
        covered = entry.end
    if covered != data_size:
        raise CheckpointError(f"{path}: truncated or padded: its header describes {covered} bytes of tensor data, "
                              f"the file holds {data_size}")


def read_header(path: Path, stream: BinaryIO, file_size: int) -> SafetensorsHeader:
    """The checked header of an open safetensors file; no tensor data is read."""
    if file_size < 8:
        raise CheckpointError(f"{path}: file is too short ({file_size} bytes) to be a checkpoint")
    prefix = bytearray(8)
    read_exactly(path, stream, prefix)
    length = int.from_bytes(prefix, "little")
    if length == 0 or length > file_size - 8:
        raise CheckpointError(f"{path}: not a safetensors file, or truncated (header length {length}, "
                              f"file size {file_size} bytes)")
    if length > MAX_HEADER_BYTES:
        raise CheckpointError(f"{path}: not a checkpoint: a header of {length} bytes, more than the "
                              f"{MAX_HEADER_BYTES // 2**20} MiB sagan-viz reads")
    first = stream.read(1)
    if first != b"{":  # cheap refusal of random bytes before reading a large header
        raise CheckpointError(f"{path}: not a safetensors file (header is not JSON)")
    raw = bytearray(length)
    raw[0:1] = first
    read_exactly(path, stream, memoryview(raw)[1:])
    try:
        header = parse_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(f"{path}: not a safetensors file (header is not JSON: {str(error)[:80]})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a safetensors file (header is not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(value, str) for value in metadata.values()):
        raise CheckpointError(f"{path}: damaged header: __metadata__ is not a map of strings")
    tensors = {name: _entry(path, name, value) for name, value in header.items()}
    _check_tiling(path, tensors, file_size - 8 - length)
    return SafetensorsHeader(metadata=metadata, tensors=tensors, data_start=8 + length)


def read_tensors(path: Path, stream: BinaryIO, header: SafetensorsHeader) -> tuple[dict[str, torch.Tensor], str]:
    """(name -> tensor, SHA-256 hex digest of the whole data section), reading each tensor once in file order.

    Each tensor owns a buffer of exactly its size, so the peak is the data section's size, read in chunks.
    """
    stream.seek(header.data_start)
    digest, tensors = hashlib.sha256(), {}
    for entry in sorted(header.tensors.values(), key=lambda entry: (entry.begin, entry.end)):
        if entry.dtype not in TORCH_DTYPES:
            raise CheckpointError(f"{path}: tensor {entry.name!r} has dtype {entry.dtype}, which torch cannot read")
        buffer = bytearray(entry.end - entry.begin)
        read_exactly(path, stream, buffer)
        digest.update(buffer)
        dtype = TORCH_DTYPES[entry.dtype]
        tensor = torch.frombuffer(buffer, dtype=dtype) if buffer else torch.empty(0, dtype=dtype)
        tensors[entry.name] = tensor.reshape(entry.shape)
    return tensors, digest.hexdigest()


def data_digest(serialised: bytes) -> str:
    """SHA-256 hex digest of the data section of safetensors bytes (what read_tensors computes)."""
    length = int.from_bytes(serialised[:8], "little")
    return hashlib.sha256(memoryview(serialised)[8 + length :]).hexdigest()


__all__ = ["CheckpointError", "MAX_HEADER_BYTES", "SafetensorsHeader", "TensorEntry", "data_digest",
           "open_regular_file", "parse_json", "read_exactly", "read_header", "read_tensors"]
