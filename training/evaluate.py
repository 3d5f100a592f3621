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

A checkpoint trained on a labelled image folder is scored with a feature net trained on that folder
(`python -m training.feature_net --data FOLDER`, passed as `--feature-net`; its record names the folder,
its classes and its held-out split):
  - FD between n generated images (seeds 0..n-1, class seed % classes, so the classes are balanced) and
    all the folder's real images. All, not only the net's held-out 15 %: the GAN learnt from every image,
    so all of them are the distribution it should reproduce, and a 128-d covariance needs many more than
    the ~300 held-out images to be stable (and the net's features show no sign of treating the images it
    learnt from differently). `--reference` adds the floor: one half of the real images against the other
    (halves drawn per class, seeded). FD grows as samples shrink, so compare checkpoints at one --samples
    and read the floor (N/2 vs N/2) as a lower bound: with n < N/2 generated images real data scores higher.
  - class agreement: the share of generated images the net's classifier assigns to the class they were
    generated for. `--reference` adds its ceiling, the net's balanced accuracy on its held-out real images
    (the mean over classes, as the generated classes are balanced), and its floor, 1/classes: what any
    generator that ignores its class gets.

Examples:
    python -m training.evaluate --reference --checkpoint runs/faces32-sagan/step_0004000.safetensors
    python -m training.evaluate --feature-net runs/twemoji_feature_net.safetensors --reference --samples 500 \
        --checkpoint runs/twemoji32-sagan/step_0001750.safetensors
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from sagan_viz.checkpoint import CheckpointError, read_checkpoint, read_checkpoint_summary
from sagan_viz.devices import DEVICE_CHOICES, resolve_device
from sagan_viz.families.sagan import SaganModel
from sagan_viz.feature_net import FeatureNet, bundled_feature_net, class_agreement, load_feature_net
from sagan_viz.metrics import eye_colour_agreement, frechet_distance, mirror_asymmetry
from sagan_viz.sampling import attention_statistics, generated_images

from .faces import render_faces
from .feature_net import held_out_split, load_labelled_folder

REAL_SEED = 1  # held-out faces every checkpoint is compared with
OTHER_REAL_SEED = 2  # a second held-out set, for the real-vs-real floor
HALVES_SEED = 0  # which real images of a folder form the two halves of the real-vs-real floor


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
        raise ValueError(f"{path}: trained on {dataset!r}; these scores compare with the procedural faces "
                         f"(for an image folder pass --feature-net made by python -m training.feature_net --data FOLDER)")
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


class RealFolder:
    """The labelled image folder a feature net was trained on: images, labels and features, loaded once per resolution."""

    def __init__(self, feature_net: FeatureNet, record: dict, folder: str | None = None) -> None:
        self.feature_net, self.record = feature_net, record
        self.folder = Path(folder or record["data"]).expanduser()
        self.classes = list(record["classes"])
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def at(self, resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(images (N, R, R, 3) uint8, labels (N,), features (N, D)) at a resolution."""
        if resolution not in self._cache:
            images, labels, classes = load_labelled_folder(self.folder, resolution)
            if classes != self.classes or len(labels) != self.record["images"]:
                raise ValueError(f"{self.folder}: {len(labels)} images in classes {classes}, but the feature net "
                                 f"was trained on {self.record['images']} in {self.classes}: the folder changed, "
                                 f"or the net belongs to another folder")
            self._cache[resolution] = images, labels, self.feature_net.features(images)
        return self._cache[resolution]

    def held_out(self, labels: np.ndarray) -> np.ndarray:
        """Indices of the images the feature net did not learn from (its record's split, drawn again)."""
        return held_out_split(labels, self.record["held_out"]["fraction"], self.record["held_out"]["seed"])[1]


def folder_reference(feature_net: FeatureNet, real: RealFolder) -> dict:
    """The floors and ceiling of a folder's scores: FD of half the real images against the other half,
    class agreement of the held-out real images (the ceiling) and of labels that ignore the image (chance)."""
    images, labels, features = real.at(feature_net.config.resolution)
    first, second = held_out_split(labels, 0.5, HALVES_SEED)
    held_out = real.held_out(labels)
    agreement = class_agreement(feature_net.classify(images[held_out]), labels[held_out], len(real.classes))
    return {
        "resolution": feature_net.config.resolution,
        "images": len(labels),
        "real_halves": {"sizes": [len(first), len(second)], "fd": frechet_distance(features[first], features[second])},
        "held_out": {"images": len(held_out), "class_agreement": agreement},
        "chance_class_agreement": 1.0 / len(real.classes),
    }


def _timed(timings: dict, name: str, function, *args, **kwargs):
    """function(*args, **kwargs), its seconds stored in timings[name]."""
    started = time.perf_counter()
    value = function(*args, **kwargs)
    timings[name] = time.perf_counter() - started
    return value


def _folder_model(path: str | Path, real: RealFolder, device: str) -> tuple[SaganModel, list[str]]:
    """The checkpoint's model and warnings; ValueError when it cannot be scored against this folder."""
    dataset = read_checkpoint_summary(path).dataset  # header only: refuse before reading any weights
    if dataset == "faces":
        raise ValueError(f"{path}: trained on the procedural faces; score it with the face feature net "
                         "(the default --feature-net)")
    model = SaganModel(read_checkpoint(path), resolve_device(device))
    if model.conditional and model.num_classes != len(real.classes):
        raise ValueError(f"{path}: {model.num_classes} classes, but the feature net knows {len(real.classes)} "
                         f"({real.folder}); pass the feature net trained on this checkpoint's data")
    warnings = []
    if Path(dataset).expanduser().resolve() != real.folder.resolve():
        warnings.append(f"trained on {dataset}, compared with {real.folder}")
    if not model.conditional:
        warnings.append("unconditional: no class agreement")
    return model, warnings


def evaluate_folder_checkpoint(path: str | Path, feature_net: FeatureNet, real: RealFolder, *, samples: int,
                               attention_seeds: int, weights: str = "ema", device: str = "auto",
                               batch_size: int = 250) -> dict:
    """FD against the folder's real images, class agreement and attention statistics of one checkpoint."""
    timings: dict[str, float] = {}
    model, warnings = _timed(timings, "load", _folder_model, path, real, device)
    seeds = range(samples)
    images = _timed(timings, "generate", generated_images, model, seeds, weights=weights, batch_size=batch_size)
    _, _, real_features = _timed(timings, "real_features", real.at, model.config.resolution)  # 0 once cached
    started = time.perf_counter()
    fd = frechet_distance(feature_net.features(images), real_features)
    agreement = None
    if model.conditional:  # generated_images draws class seed % classes
        labels = np.array([model.default_label(seed) for seed in seeds])
        agreement = class_agreement(feature_net.classify(images), labels, len(real.classes))
    timings["scores"] = time.perf_counter() - started
    attention = (_timed(timings, "attention", attention_statistics, model, range(attention_seeds), weights=weights)
                 if attention_seeds else {})
    return {
        "checkpoint": str(path), "step": model.step, "resolution": model.config.resolution, "weights": weights,
        "samples": samples, "real_images": len(real_features), "fd": fd, "class_agreement": agreement,
        "attention_seeds": attention_seeds, "attention": attention, "warnings": warnings,
        "timings_s": {name: round(value, 2) for name, value in timings.items()},
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


def format_folder_reference(reference: dict, classes: list[str]) -> list[str]:
    """Lines describing a folder's floors and ceiling."""
    halves, held_out = reference["real_halves"], reference["held_out"]
    agreement = held_out["class_agreement"]
    return [f"reference: {reference['images']} real images, {reference['resolution']} px "
            f"({reference.get('time_s', 0):.1f} s)",
            f"  FD floor (real half vs half, {halves['sizes'][0]} vs {halves['sizes'][1]}) {halves['fd']:9.3f}",
            f"  class agreement ceiling (held-out real, {held_out['images']} images): balanced "
            f"{agreement['balanced']:.3f}, overall {agreement['share']:.3f};  chance (labels ignored) "
            f"{reference['chance_class_agreement']:.3f}",
            "    per class: " + _per_class(agreement, classes)]


def _per_class(agreement: dict, classes: list[str]) -> str:
    """'name 0.83  name 0.41 ...' of a class agreement."""
    return "  ".join(f"{name} {value:.2f}" for name, value in zip(classes, agreement["per_class"]) if value is not None)


def format_folder_result(result: dict, classes: list[str]) -> list[str]:
    """Lines describing one folder checkpoint's scores."""
    agreement = result["class_agreement"]
    lines = [f"{result['checkpoint']}  (step {result['step']}, {result['resolution']} px, "
             f"{'EMA-G' if result['weights'] == 'ema' else 'raw G'}, {result['samples']} samples "
             f"vs {result['real_images']} real)",
             f"  FD {result['fd']:.3f}" + (f"   class agreement {agreement['share']:.3f}" if agreement else "")]
    if agreement:
        lines.append("    per class: " + _per_class(agreement, classes))
    lines += [f"  warning: {warning}" for warning in result["warnings"]]
    for name, stats in result["attention"].items():
        lines.append(f"  attention {name} over {result['attention_seeds']} seeds: distance {stats['distance']:.3f}  "
                     f"entropy {stats['entropy']:.3f}  query-dependence {stats['query_dependence']:.3f}  "
                     f"gamma {stats['gamma']:+.4f}")
    lines.append("  time (s): " + ", ".join(f"{name} {value:.1f}" for name, value in result["timings_s"].items()))
    return lines


def build_parser() -> argparse.ArgumentParser:
    """The command line, every flag explained."""
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="FD (FeatureNet space), mirror asymmetry, eye-colour agreement and attention statistics "
                    "of checkpoints trained on the procedural faces; FD and class agreement of checkpoints "
                    "trained on a labelled image folder, given a feature net trained on that folder.")
    parser.add_argument("--checkpoint", action="append", default=[], help="a .safetensors checkpoint; repeatable")
    parser.add_argument("--reference", action="store_true",
                        help="also score real data: faces: real faces and chimeras, the floor and a broken-symmetry "
                             "yardstick; a folder: the real-vs-real FD floor and the class agreement ceiling")
    parser.add_argument("--samples", type=int, default=1000,
                        help="generated images per checkpoint (faces: also the real faces per FD)")
    parser.add_argument("--feature-net", default=None,
                        help="made by python -m training.feature_net; one trained on a folder scores that folder's runs "
                        "(default: the face net shipped in sagan_viz/data)")
    parser.add_argument("--data", help="a folder feature net's image folder, if it moved (default: the path it records)")
    parser.add_argument("--attention-seeds", type=int, default=16, help="seeds 0..k-1 for attention statistics")
    parser.add_argument("--weights", default="ema", choices=SaganModel.weight_choices, help="EMA-G or the raw G")
    parser.add_argument("--real-seed", type=int, default=REAL_SEED, help="faces: seed of the held-out real faces")
    parser.add_argument("--batch-size", type=int, default=250, help="images per generator call")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES,
                        help="where the networks run; auto picks cuda, then mps, then cpu")
    parser.add_argument("--json", help="also write every number to this JSON file")
    return parser


def _score_faces(args: argparse.Namespace, feature_net: FeatureNet, report: dict) -> None:
    """The face scores of --reference and every --checkpoint, printed and added to report."""
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


def _score_folder(args: argparse.Namespace, feature_net: FeatureNet, record: dict, report: dict) -> None:
    """The folder scores of --reference and every --checkpoint, printed and added to report."""
    real = RealFolder(feature_net, record, args.data)
    report["real"] = {"folder": str(real.folder), "classes": real.classes, "compared_with": "all real images"}
    if args.reference:
        started = time.perf_counter()
        report["reference"] = folder_reference(feature_net, real)
        report["reference"]["time_s"] = round(time.perf_counter() - started, 2)
        print("\n".join(format_folder_reference(report["reference"], real.classes)), flush=True)
    for path in args.checkpoint:
        result = evaluate_folder_checkpoint(path, feature_net, real, samples=args.samples,
                                            attention_seeds=args.attention_seeds, weights=args.weights,
                                            device=args.device, batch_size=args.batch_size)
        report["checkpoints"].append(result)
        print("\n".join(format_folder_result(result, real.classes)), flush=True)


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
    try:
        args.feature_net = str(args.feature_net or bundled_feature_net("faces"))
        feature_net, record = load_feature_net(args.feature_net)
        faces = record.get("data", "faces") == "faces"  # files made before folders existed record no data
        if faces and args.data:
            parser.error(f"--data is for a feature net trained on a folder; {args.feature_net} was trained on faces")
        report: dict = {"samples": args.samples, **({"real_seed": args.real_seed} if faces else {}), "checkpoints": [],
                        "feature_net": {"path": args.feature_net, **record}}
        print(f"feature net {args.feature_net}: held-out accuracy "
              + ", ".join(f"{k} {v:.3f}" for k, v in record.get("held_out_accuracy", {}).items()))
        if faces:
            _score_faces(args, feature_net, report)
        else:
            _score_folder(args, feature_net, record, report)
    except (CheckpointError, ValueError) as error:
        parser.error(str(error))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
