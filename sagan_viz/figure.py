"""`python -m sagan_viz.figure`: the paper-style attention figure of a checkpoint, without the UI.

Example:
    python -m sagan_viz.figure --checkpoint runs/faces32-sagan/step_0004000.safetensors \\
        --seed 7 --query 12,20 --query 5,9 --layer G.attn0 --out fig.png

`--from figure.json` draws again any figure the studio exported (Inspect's figure, a Compare panel, an
Attribution or discriminator figure), through the same library function the studio drew it with.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from .attribution import attribute_query, discriminator_view
from .checkpoint import CheckpointError
from .comparison import comparison_panel
from .devices import DEVICE_CHOICES
from .families import LoadedModel, load_checkpoint
from .figure_record import FigureRecord, FigureRecordError, check_digest, checkpoint_digest, read_record, record_path
from .imaging import encode_png
from .inspect import Generation
from .paper_figure import figure_for_queries
from .queries import MAX_QUERIES


def parse_query(text: str) -> tuple[float, float]:
    """'X,Y' -> (x, y) in generated-image pixels."""
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return float(parts[0]), float(parts[1])
    except ValueError:
        message = f"malformed query {text!r}: expected X,Y in image pixels, e.g. 12,20"
        raise argparse.ArgumentTypeError(message) from None


def positive_int(text: str) -> int:
    """An integer >= 1 (for --scale)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of sagan_viz.figure."""
    parser = argparse.ArgumentParser(
        prog="python -m sagan_viz.figure",
        description="Draw the SAGAN-paper attention figure (image with query points, one attention map "
        "per query with arrows to its most-attended regions) for one seed of a checkpoint.",
    )
    parser.add_argument("--from", dest="record", type=Path, default=None, metavar="FIGURE.json",
                        help="draw again the figure a record describes (written beside every exported PNG); "
                        "the checkpoint must have the recorded SHA-256; --checkpoint may point at its new place")
    parser.add_argument("--checkpoint", type=Path,
                        help="a sagan-viz .safetensors checkpoint, or a BigGAN-deep folder (config.json + "
                        "pytorch_model.bin)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the latent z to generate from (default 0)")
    parser.add_argument("--class", "--label", dest="label", default=None, metavar="CLASS",
                        help="class of a conditional model: its index, or its name such as 'golden retriever' "
                        "(default: seed mod number of classes)")
    parser.add_argument("--truncation", type=float, default=None,
                        help="truncation in (0, 1] for models that have it, e.g. BigGAN-deep (default 0.4)")
    parser.add_argument("--query", action="append", type=parse_query, default=[], metavar="X,Y",
                        help=f"a query point in generated-image pixels, x right and y down from the top-left "
                        f"corner; repeat for up to {MAX_QUERIES} queries (none: the image alone)")
    parser.add_argument("--layer", default=None,
                        help="attention layer to show, e.g. G.attn0 or D.attn0 (default: the first layer)")
    parser.add_argument("--weights", choices=("ema", "raw", "train-bn"), default=None,
                        help="generator weights: the EMA average the paper samples from, the raw last step, or "
                        "(heykeetae) the raw G with batch norm in train mode; default: the file's first (EMA where "
                        "it has one)")
    parser.add_argument("--scale", type=positive_int, default=8,
                        help="display pixels per generated pixel in the figure (default 8)")
    parser.add_argument("--peaks", type=positive_int, default=3, help="arrows per query (default 3)")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                        help="where to run the networks; auto picks cuda, then mps, then cpu (default auto)")
    parser.add_argument("--out", required=True, type=Path,
                        help="PNG file to write; its record (checkpoint digest, inputs, settings) goes beside it as .json")
    return parser


def main(argv: list[str] | None = None) -> Path:
    """Parse argv, draw the figure, write it; every user error exits 2 with a one-line message."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.record is not None:
        return redraw(parser, args)
    if args.checkpoint is None:
        parser.error("give --checkpoint (or --from a figure record)")
    if len(args.query) > MAX_QUERIES:
        parser.error(f"at most {MAX_QUERIES} --query points fit in one figure, got {len(args.query)}")
    try:
        model = load_checkpoint(args.checkpoint, args.device)
    except (CheckpointError, ValueError) as error:
        parser.error(str(error))
    layers = model.attention_layer_names()
    if not layers:
        parser.error(f"{args.checkpoint}: this model has no attention layers to show")
    layer = args.layer or layers[0]
    if layer not in layers:
        parser.error(f"unknown --layer {layer!r}; this model has: {', '.join(layers)}")
    args.weights = args.weights or model.weight_choices[0]
    if args.weights not in model.weight_choices:
        parser.error(f"--weights {args.weights}: this {model.family} model holds only {', '.join(model.weight_choices)}")
    try:
        label = None if args.label is None else model.class_for_text(args.label)
    except ValueError as error:  # a class the model lacks, or one given to an unconditional model
        parser.error(f"--class: {error}")
    try:
        generation = model.generate(args.seed, label=label, truncation=args.truncation, weights=args.weights)
    except ValueError as error:
        parser.error(f"--truncation: {error}")
    try:
        figure = figure_for_queries(generation, layer, args.query, scale=args.scale, max_peaks=args.peaks,
                                    step=model.step)
    except ValueError as error:  # a query outside the image
        parser.error(f"--query: {error}")
    record = FigureRecord.of_generation(str(args.checkpoint), checkpoint_digest(args.checkpoint), model.family,
                                        generation, layer=layer, queries=tuple(args.query), scale=args.scale,
                                        peaks=args.peaks)
    write_figure(parser, figure, record, args.out)
    step = "" if model.step is None else f", step {model.step}"
    print(f"wrote {args.out} ({figure.size[0]}x{figure.size[1]}): {layer}, {generation.origin}, "
          f"{len(args.query)} queries{step}")
    return args.out


def write_figure(parser: argparse.ArgumentParser, figure, record: FigureRecord, out: Path) -> None:
    """The PNG and its record beside it; a one-line error when either cannot be written."""
    try:
        out.write_bytes(encode_png(np.asarray(figure.convert("RGB"))))  # the studio's encoder: the same bytes
        record_path(out).write_text(record.to_json(), encoding="utf-8")
    except OSError as error:
        parser.error(f"cannot write {out}: {error.strerror or error}")


def redraw(parser: argparse.ArgumentParser, args) -> Path:
    """--from: the recorded figure, drawn again from a checkpoint with the recorded digest."""
    try:
        record = read_record(args.record)
        checkpoint = args.checkpoint or Path(record.checkpoint)
        if not checkpoint.is_absolute() and args.checkpoint is None and not checkpoint.exists():
            checkpoint = args.record.parent / checkpoint  # a record moved with its checkpoint
        check_digest(record, checkpoint)
        model = load_checkpoint(checkpoint, args.device)
    except (FigureRecordError, CheckpointError, ValueError, OSError) as error:
        parser.error(str(error))  # each names its file
    try:
        generation = recorded_generation(model, record)
        figure = draw_recorded(model, generation, record)
    except ValueError as error:  # a layer, query or method the model does not have
        parser.error(f"{args.record}: {error}")
    write_figure(parser, figure, record, args.out)
    print(f"wrote {args.out} again from {args.record}: {record.kind} figure, {generation.origin}")
    return args.out


def recorded_generation(model: LoadedModel, record: FigureRecord) -> Generation:
    """The generation a record's figure was drawn from: its seed or z, class, truncation and weights."""
    return model.generate(seed=record.seed, z=None if record.z is None else torch.tensor(record.z),
                          label=record.label, truncation=record.truncation, weights=record.weights)


def draw_recorded(model: LoadedModel, generation: Generation, record: FigureRecord):
    """The figure a record describes, drawn by the library function that drew it in the studio (one per kind)."""
    queries = list(record.queries)
    if record.kind == "compare-panel":
        return comparison_panel(generation, record.layer, queries, record.title, scale=record.scale,
                                max_peaks=record.peaks)
    if record.kind == "attribution":
        return attribute_query(model, generation, record.layer, queries[0], record.method, record.gamma_zero,
                               scale=record.scale).figure
    if record.kind == "discriminator-view":
        return discriminator_view(model, generation, record.method, record.scale)
    return figure_for_queries(generation, record.layer, queries, scale=record.scale, max_peaks=record.peaks,
                              step=model.step)

if __name__ == "__main__":
    main()
