"""A figure's recipe, saved beside every exported PNG: enough to draw the same PNG again, byte for byte.

`python -m sagan_viz.figure --from figure.json --out again.png` reads it; the checkpoint's SHA-256 must
match, so a figure is never silently redrawn from other weights. Its `kind` says which figure it is:
"inspect" (the paper figure of Inspect and the CLI), "compare-panel" (one panel of Compare),
"attribution" (a query's Captum attribution) or "discriminator-view" (D's saliency over the image).

Version 1 records (before kinds) are all "inspect" figures and still read.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

RECORD_FORMAT = "sagan-viz-figure"
RECORD_VERSION = 2
READABLE_VERSIONS = (1, 2)
ADDED_IN_VERSION_2 = ("kind", "title", "method", "gamma_zero")  # a version 1 record is an "inspect" figure
KINDS = ("inspect", "compare-panel", "attribution", "discriminator-view")
MODEL_FOLDER_FILES = ("config.json", "pytorch_model.bin")  # what a folder-shaped checkpoint's weights are
MAX_RECORD_BYTES = 1_000_000


class FigureRecordError(ValueError):
    """A figure record that cannot be read or does not match its checkpoint."""


@dataclass(frozen=True)
class FigureRecord:
    """Everything a figure was drawn from: checkpoint, inputs, layer, queries and display settings."""

    checkpoint: str  # the path as it was given
    checkpoint_sha256: str
    family: str
    layer: str  # "" for a discriminator-view, which shows no attention layer
    queries: tuple[tuple[float, float], ...]  # generated-image pixels (x, y)
    weights: str = "ema"
    seed: int | None = None
    z: tuple[float, ...] | None = None  # only when no seed named it
    label: int | None = None
    truncation: float | None = None
    scale: int = 8
    peaks: int = 3
    kind: str = "inspect"  # one of KINDS: which function draws it
    title: str | None = None  # compare-panel: the panel's title (its checkpoint's label)
    method: str | None = None  # attribution: attribution.METHODS; discriminator-view: DISCRIMINATOR_METHODS
    gamma_zero: bool = False  # attribution: the gamma = 0 run (the receptive field alone) drawn beside it

    @classmethod
    def of_generation(cls, checkpoint: str, checkpoint_sha256: str, family: str, generation, **settings) -> FigureRecord:
        """The record of a figure drawn from generation: its weights, seed (or z), class and truncation filled in."""
        z = None if generation.seed is not None else tuple(generation.z.flatten().tolist())
        return cls(checkpoint=checkpoint, checkpoint_sha256=checkpoint_sha256, family=family,
                   weights=generation.weights, seed=generation.seed, z=z, label=generation.label,
                   truncation=generation.truncation, **settings)

    def to_json(self) -> str:
        """The record as indented JSON, tagged with its format and version."""
        data = {"format": RECORD_FORMAT, "version": RECORD_VERSION, **dataclasses.asdict(self)}
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> FigureRecord:
        """Parse and check a record; FigureRecordError naming source and the field at fault."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError, ValueError) as error:
            raise FigureRecordError(f"{source}: not a figure record ({error})") from None
        if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
            raise FigureRecordError(f"{source}: not a sagan-viz figure record (no '{RECORD_FORMAT}' format tag)")
        if data.get("version") not in READABLE_VERSIONS:
            raise FigureRecordError(f"{source}: figure record version {data.get('version')}, this reads versions "
                                    f"{', '.join(map(str, READABLE_VERSIONS))}")
        fields = {field.name for field in dataclasses.fields(cls)}
        if data["version"] == 1:
            fields -= set(ADDED_IN_VERSION_2)
        values = {key: value for key, value in data.items() if key in fields}
        try:
            values["queries"] = tuple((float(x), float(y)) for x, y in values.get("queries", ()))
            if values.get("z") is not None:
                values["z"] = tuple(float(v) for v in values["z"])
            record = cls(**values)
        except (TypeError, ValueError) as error:
            raise FigureRecordError(f"{source}: damaged figure record ({error})") from None
        if (record.seed is None) == (record.z is None):
            raise FigureRecordError(f"{source}: a figure record names either a seed or a z")
        problem = record.kind_problem()
        if problem:
            raise FigureRecordError(f"{source}: {problem}")
        return record

    def kind_problem(self) -> str | None:
        """What this kind of figure needs and the record lacks, in words; None when it has it all."""
        if self.kind not in KINDS:
            return f"unknown kind of figure {self.kind!r} (this reads {', '.join(KINDS)})"
        figure = f"{'an' if self.kind[0] in 'aeiou' else 'a'} {self.kind} figure"
        if self.kind != "discriminator-view" and not self.layer:
            return f"{figure} names its attention layer"
        if self.kind == "compare-panel" and not isinstance(self.title, str):
            return f"{figure} names its title"
        if self.kind in ("attribution", "discriminator-view") and not isinstance(self.method, str):
            return f"{figure} names its method"
        if self.kind == "attribution" and len(self.queries) != 1:
            return f"{figure} has one query, this record has {len(self.queries)}"
        return None


def checkpoint_files(path: str | Path) -> list[Path]:
    """The files whose bytes a checkpoint is: the file itself, or a model folder's config and weights."""
    path = Path(path)
    return [path] if path.is_file() else [path / name for name in MODEL_FOLDER_FILES if (path / name).is_file()]


def checkpoint_version(path: str | Path) -> tuple:
    """What changes when a checkpoint's bytes are rewritten: each of its files' path, size and modification time
    (a folder's own time does not change when a file in it is overwritten)."""
    key = [str(Path(path).resolve())]
    for file in checkpoint_files(path):
        status = file.stat()
        key += [file.name, status.st_size, status.st_mtime_ns]
    return tuple(key)


def checkpoint_digest(path: str | Path) -> str:
    """SHA-256 of a checkpoint file, or of a model folder's config and weights (names and bytes)."""
    path = Path(path)
    digest = hashlib.sha256()
    for file in checkpoint_files(path):
        if path.is_dir():
            digest.update(file.name.encode() + b"\0")
        with file.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def read_record(path: str | Path) -> FigureRecord:
    """Read a figure record file (FigureRecordError naming it)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            raise FigureRecordError(f"{path}: too large for a figure record")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise FigureRecordError(f"{path}: cannot read the figure record ({error})") from None
    return FigureRecord.from_json(text, str(path))


def check_digest(record: FigureRecord, checkpoint: str | Path) -> None:
    """FigureRecordError when the checkpoint's bytes are not those the figure was drawn from."""
    found = checkpoint_digest(checkpoint)
    if found != record.checkpoint_sha256:
        raise FigureRecordError(
            f"{checkpoint}: its SHA-256 is {found[:12]}…, the figure was drawn from {record.checkpoint_sha256[:12]}…: "
            "not the same weights, so the figure would not be the same"
        )


def record_path(png_path: str | Path) -> Path:
    """Where a PNG's record goes: figure.png -> figure.json."""
    return Path(png_path).with_suffix(".json")


def write_record(record: FigureRecord, png_path: str | Path) -> str:
    """Write record beside the PNG it describes; returns the record's path."""
    path = record_path(png_path)
    path.write_text(record.to_json(), encoding="utf-8")
    return str(path)
