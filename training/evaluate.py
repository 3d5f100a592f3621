"""`python -m training.evaluate`: score checkpoints without downloading anything.

Per checkpoint: the Fréchet distance (FD) in FeatureNet space between EMA-G samples of seeds 0..n-1
and n held-out procedural faces (seed 1; the runs train on seed 0), the mirror asymmetry and
eye-colour agreement of the samples, and attention statistics per layer. `--reference` prints the
same scores for real faces (a second held-out set, seed 2) and for "chimeras" (left half of one real
face, right half of another), which bound what the numbers can be: real faces are the floor, and
chimeras show what broken long-range consistency costs.

Generated images at another resolution than the feature net's (32 px) are resized to it
(bilinear, antialiased) before features are taken; the real faces are rendered at the checkpoint's
resolution and resized the same way, so both sides see one pipeline.

Example:
    python -m training.evaluate --reference --checkpoint runs/faces32-sagan/step_0004000.safetensors
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from sagan_viz.checkpoint import CheckpointError, read_checkpoint, read_checkpoint_summary
from sagan_viz.devices import resolve_device
from sagan_viz.families.sagan import SaganModel
from sagan_viz.feature_net import FeatureNet, load_feature_net
from sagan_viz.metrics import eye_colour_agreement, frechet_distance, mirror_asymmetry
from sagan_viz.sampling import attention_statistics, generated_images

from .faces import render_faces

REAL_SEED = 1  # held-out faces every checkpoint is compared with
OTHER_REAL_SEED = 2  # a second held-out set, for the real-vs-real floor
DEFAULT_FEATURE_NET = "checkpoints/feature_net.safetensors"


def chimeras(images: np.ndarray) -> np.ndarray:
    """Left half of face k joined to the right half of face k+1: plausible halves, inconsistent wholes."""
    width = images.shape[2]
    return np.concatenate([images[:, :, : width // 2], np.roll(images, -1, axis=0)[:, :, width // 2 :]], axis=2)


class RealFaces:
    """Held-out faces and their features, rendered once per resolution."""

    def __init__(self, feature_net: FeatureNet, count: int, seed: int) -> None:
        self.feature_net, self.count, self.seed = feature_net, count, seed
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def at(self, resolution: int) -> tuple[np.ndarray, np.ndarray]:
        """(images (N, R, R, 3) uint8, features (N, D)) at a resolution."""
        if resolution not in self._cache:
            images, _ = render_faces(self.count, resolution, self.seed)
            self._cache[resolution] = images, self.feature_net.features(images)
        return self._cache[resolution]


def image_scores(images: np.ndarray, features: np.ndarray, real_features: np.ndarray) -> dict[str, float]:
    """FD against the real features, mirror asymmetry and eye-colour agreement of a set of images."""
    return {
        "fd": frechet_distance(features, real_features),
        "mirror_asymmetry": mirror_asymmetry(images),
        "eye_colour_agreement": eye_colour_agreement(images),
    }


def reference_scores(feature_net: FeatureNet, real: RealFaces) -> dict:
    """Scores of real faces (seed OTHER_REAL_SEED) and of chimeras made from them, against the held-out set."""
    resolution = feature_net.config.resolution
    _, real_features = real.at(resolution)
    other = RealFaces(feature_net, real.count, OTHER_REAL_SEED)
    other_images, other_features = other.at(resolution)
    mixed = chimeras(other_images)
    return {
        "resolution": resolution,
        "samples": real.count,
        "real": image_scores(other_images, other_features, real_features),
        "chimeras": image_scores(mixed, feature_net.features(mixed), real_features),
    }


def evaluate_checkpoint(path: str | Path, feature_net: FeatureNet, real: RealFaces, *, attention_seeds: int,
                        weights: str = "ema", device: str = "auto", batch_size: int = 250) -> dict:
    """All scores of one checkpoint, with the seconds each part took."""
    timings = {}
    started = time.perf_counter()
    dataset = read_checkpoint_summary(path).dataset  # header only: refuse before reading any weights
    if dataset != "faces":
        raise ValueError(f"{path}: trained on {dataset!r}; these scores compare with the procedural faces")
    contents = read_checkpoint(path)
    model = SaganModel(contents, resolve_device(device))
    warnings = []
    if contents.training.get("seed") == real.seed:
        warnings.append(f"trained on faces of seed {real.seed}, the held-out seed: FD is not on unseen faces")
    timings["load"] = time.perf_counter() - started

    started = time.perf_counter()
    images = generated_images(model, range(real.count), weights=weights, batch_size=batch_size)
    timings["generate"] = time.perf_counter() - started
    started = time.perf_counter()
    _, real_features = real.at(model.config.resolution)
    timings["real_features"] = time.perf_counter() - started  # 0 once cached
    started = time.perf_counter()
    scores = image_scores(images, feature_net.features(images), real_features)
    timings["scores"] = time.perf_counter() - started
    started = time.perf_counter()
    attention = attention_statistics(model, range(attention_seeds), weights=weights) if attention_seeds else {}
    timings["attention"] = time.perf_counter() - started
    return {
        "checkpoint": str(path), "step": model.step, "resolution": model.config.resolution, "weights": weights,
        "samples": real.count, **scores, "attention_seeds": attention_seeds, "attention": attention,
        "warnings": warnings, "timings_s": {name: round(value, 2) for name, value in timings.items()},
    }


def format_reference(reference: dict) -> list[str]:
    """Lines describing the reference scores."""
    lines = [f"reference: {reference['samples']} real faces (seed {OTHER_REAL_SEED}) vs held-out (seed {REAL_SEED}), "
             f"{reference['resolution']} px ({reference.get('time_s', 0):.1f} s)"]
    for name, label in (("real", "real faces"), ("chimeras", "chimeras (halves of two faces)")):
        scores = reference[name]
        lines.append(f"  {label:32s} FD {scores['fd']:9.3f}   mirror asymmetry {scores['mirror_asymmetry']:.4f}   "
                     f"eye-colour agreement {scores['eye_colour_agreement']:.3f}")
    return lines


def format_result(result: dict) -> list[str]:
    """Lines describing one checkpoint's scores."""
    lines = [f"{result['checkpoint']}  (step {result['step']}, {result['resolution']} px, "
             f"{'EMA-G' if result['weights'] == 'ema' else 'raw G'}, {result['samples']} samples)",
             f"  FD {result['fd']:.3f}   mirror asymmetry {result['mirror_asymmetry']:.4f}   "
             f"eye-colour agreement {result['eye_colour_agreement']:.3f}"]
    lines += [f"  warning: {warning}" for warning in result["warnings"]]
    if result["attention"]:
        lines.append(f"  attention over {result['attention_seeds']} seeds:  layer    distance  entropy  "
                     f"query-dependence  gamma")
        for name, stats in result["attention"].items():
            lines.append(f"  {'':32s}{name:8s} {stats['distance']:8.3f}  {stats['entropy']:7.3f}  "
                         f"{stats['query_dependence']:16.3f}  {stats['gamma']:+.4f}")
    elif result["attention_seeds"]:
        lines.append("  attention: this model has no attention layers")
    lines.append("  time (s): " + ", ".join(f"{name} {value:.1f}" for name, value in result["timings_s"].items()))
    return lines


def build_parser() -> argparse.ArgumentParser:
    """The command line, every flag explained."""
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="FD (FeatureNet space), mirror asymmetry, eye-colour agreement and attention statistics "
                    "of checkpoints trained on the procedural faces.")
    parser.add_argument("--checkpoint", action="append", default=[], help="a .safetensors checkpoint; repeatable")
    parser.add_argument("--reference", action="store_true",
                        help="also score real faces and chimeras: the floor and a broken-symmetry yardstick")
    parser.add_argument("--samples", type=int, default=1000, help="generated and real images per FD")
    parser.add_argument("--feature-net", default=DEFAULT_FEATURE_NET, help="made by python -m training.feature_net")
    parser.add_argument("--attention-seeds", type=int, default=16, help="seeds 0..k-1 for attention statistics")
    parser.add_argument("--weights", default="ema", choices=SaganModel.weight_choices, help="EMA-G or the raw G")
    parser.add_argument("--real-seed", type=int, default=REAL_SEED, help="seed of the held-out real faces")
    parser.add_argument("--batch-size", type=int, default=250, help="images per generator call")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    parser.add_argument("--json", help="also write every number to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse flags, score, print; errors are one line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.checkpoint and not args.reference:
        parser.error("nothing to do: pass --checkpoint PATH (repeatable) and/or --reference")
    if args.samples < 2 or args.batch_size < 1 or args.attention_seeds < 0:
        parser.error("--samples must be >= 2, --batch-size >= 1 and --attention-seeds >= 0")
    if args.real_seed == OTHER_REAL_SEED:
        parser.error(f"--real-seed {OTHER_REAL_SEED} is the reference's second held-out set; choose another")
    report: dict = {"samples": args.samples, "real_seed": args.real_seed, "checkpoints": []}
    try:
        feature_net, record = load_feature_net(args.feature_net)
        report["feature_net"] = {"path": args.feature_net, **record}
        print(f"feature net {args.feature_net}: held-out accuracy "
              + ", ".join(f"{k} {v:.3f}" for k, v in record.get("held_out_accuracy", {}).items()))
        real = RealFaces(feature_net, args.samples, args.real_seed)
        if args.reference:
            started = time.perf_counter()
            report["reference"] = reference_scores(feature_net, real)
            report["reference"]["time_s"] = round(time.perf_counter() - started, 2)
            print("\n".join(format_reference(report["reference"])), flush=True)
        for path in args.checkpoint:
            result = evaluate_checkpoint(path, feature_net, real, attention_seeds=args.attention_seeds,
                                         weights=args.weights, device=args.device, batch_size=args.batch_size)
            report["checkpoints"].append(result)
            print("\n".join(format_result(result)), flush=True)
    except (CheckpointError, ValueError) as error:
        parser.error(str(error))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
