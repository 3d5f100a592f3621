"""Scores for runs on a labelled image folder: the held-out split, a FeatureNet with a classifier, class agreement, FD."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from sagan_viz.checkpoint import save_checkpoint
from sagan_viz.config import ModelConfig
from sagan_viz.feature_net import FeatureNet, FeatureNetConfig, class_agreement, load_feature_net, save_feature_net
from sagan_viz.metrics import frechet_distance
from sagan_viz.networks import build_networks
from training import evaluate, feature_net
from training.feature_net import held_out_split, load_labelled_folder

SHAPES = ("blue-bars", "green-discs", "red-squares")  # sorted: the label order training.data gives
PER_CLASS = 40


def shape_image(shape: str, rng: np.random.Generator) -> np.ndarray:
    """A 32x32 drawing on white: one coloured shape of random size and place, with a little noise."""
    y, x = np.mgrid[0:32, 0:32]
    centre_y, centre_x = rng.integers(10, 22, size=2)
    size = rng.integers(4, 8)
    if shape == "red-squares":
        inside, colour = (abs(y - centre_y) <= size) & (abs(x - centre_x) <= size), (210, 30, 30)
    elif shape == "green-discs":
        inside, colour = (y - centre_y) ** 2 + (x - centre_x) ** 2 <= size**2, (30, 170, 40)
    else:
        inside, colour = (abs(y - centre_y) <= 2) & (abs(x - centre_x) <= 2 * size), (30, 40, 200)
    image = np.full((32, 32, 3), 255.0)
    image[inside] = colour
    return np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def shapes_folder(tmp_path_factory):
    """A labelled folder: PER_CLASS PNGs in each of three class subfolders."""
    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    for shape in SHAPES:
        (root / shape).mkdir()
        for index in range(PER_CLASS):
            Image.fromarray(shape_image(shape, rng)).save(root / shape / f"{index:03d}.png")
    return root


@pytest.fixture(scope="module")
def shapes_net(shapes_folder, tmp_path_factory):
    """(path, net, record) of a FeatureNet trained on the shapes by the command line, at 16 px."""
    path = tmp_path_factory.mktemp("net") / "shapes_net.safetensors"
    assert feature_net.main(["--data", str(shapes_folder), "--resolution", "16", "--steps", "100", "--batch-size", "32",
                             "--width", "8", "--out", str(path)]) == 0
    net, record = load_feature_net(path)
    return path, net, record


def save_untrained_checkpoint(path, dataset: str, num_classes: int):
    """A freshly initialised tiny conditional G/D saved as a checkpoint of a run on dataset."""
    torch.manual_seed(0)
    config = ModelConfig(g_channels=16, d_channels=16, z_dim=16, num_classes=num_classes)
    generator, discriminator = build_networks(config)
    save_checkpoint(path, config=config, generator=generator, generator_ema=generator, discriminator=discriminator,
                    step=0, wall_time_s=0.0, dataset=dataset, history={}, training={"seed": 0})
    return path


def test_held_out_split_takes_a_share_of_every_class_and_is_repeatable():
    labels = np.repeat([0, 1, 2, 3], [20, 7, 2, 1])
    kept, held_out = held_out_split(labels, 0.15, seed=0)
    assert np.bincount(labels[held_out], minlength=4).tolist() == [3, 1, 1, 0]  # a lone image is never held out
    assert sorted(np.concatenate([kept, held_out]).tolist()) == list(range(len(labels)))
    again_kept, again_held_out = held_out_split(labels, 0.15, seed=0)
    np.testing.assert_array_equal(held_out, again_held_out)
    np.testing.assert_array_equal(kept, again_kept)
    assert not np.array_equal(held_out_split(labels, 0.15, seed=1)[1], held_out)


def test_class_agreement_counts_per_class_and_balances_over_the_classes_present():
    predicted = np.array([0, 0, 1, 1, 1, 0])
    labels = np.array([0, 1, 1, 1, 1, 3])
    agreement = class_agreement(predicted, labels, classes=4)
    assert agreement["share"] == pytest.approx(4 / 6)
    assert agreement["per_class"] == [1.0, 0.75, None, 0.0]
    assert agreement["balanced"] == pytest.approx((1.0 + 0.75 + 0.0) / 3)
    with pytest.raises(ValueError, match="label arrays"):
        class_agreement(predicted, labels[:3], classes=4)


def test_folder_feature_net_records_its_data_and_classifies_held_out_images_well_above_chance(shapes_folder, shapes_net):
    _, net, record = shapes_net
    assert record["data"] == str(shapes_folder.resolve()) and record["classes"] == list(SHAPES)
    assert record["images"] == 3 * PER_CLASS and record["held_out"] == {"fraction": 0.15, "seed": 0, "images": 18}
    assert net.config.classes == 3 and net.config.resolution == 16
    assert record["chance_accuracy"] == pytest.approx(1 / 3, abs=1e-4)
    assert record["held_out_accuracy"]["balanced"] >= 0.9  # colours tell the classes apart


def test_class_agreement_is_one_on_separable_real_images_and_chance_with_shuffled_labels(shapes_folder, shapes_net):
    _, net, _ = shapes_net
    images, labels, _ = load_labelled_folder(shapes_folder, 32)  # another size than the net's: resized to 16
    predicted = net.classify(images)
    assert class_agreement(predicted, labels, 3)["share"] == 1.0
    rng = np.random.default_rng(0)
    shuffled = [class_agreement(predicted, rng.permutation(labels), 3)["share"] for _ in range(20)]
    assert np.mean(shuffled) == pytest.approx(1 / 3, abs=0.04)


def test_frechet_distance_of_real_halves_is_far_below_real_against_noise(shapes_folder, shapes_net):
    _, net, _ = shapes_net
    images, labels, _ = load_labelled_folder(shapes_folder, 16)
    first, second = held_out_split(labels, 0.5, seed=0)
    noise = np.random.default_rng(1).integers(0, 256, (len(second), 16, 16, 3), dtype=np.uint8)
    features = net.features(images)
    real_vs_real = frechet_distance(features[first], features[second])
    assert real_vs_real < 0.2 * frechet_distance(features[first], net.features(noise))


def test_classifier_is_saved_with_the_net_and_a_net_without_one_stays_version_1(tmp_path, shapes_folder, shapes_net):
    path, net, _ = shapes_net
    images, _, _ = load_labelled_folder(shapes_folder, 16)
    loaded, _ = load_feature_net(path)
    np.testing.assert_array_equal(loaded.classify(images), net.classify(images))
    plain = FeatureNet(FeatureNetConfig(width=8, feature_dim=16))
    save_feature_net(tmp_path / "plain.safetensors", plain, {})
    header = (tmp_path / "plain.safetensors").read_bytes()
    metadata = json.loads(header[8 : 8 + int.from_bytes(header[:8], "little")])["__metadata__"]
    assert metadata["version"] == "1" and "classes" not in json.loads(metadata["config"])  # as older readers expect
    assert "classifier.weight" not in plain.state_dict()
    with pytest.raises(ValueError, match="no classifier"):
        plain.classify(images)


def test_evaluate_cli_scores_a_folder_checkpoint_with_its_floor_and_ceiling(tmp_path, shapes_folder, shapes_net, capsys):
    path, _, record = shapes_net
    checkpoint = save_untrained_checkpoint(tmp_path / "shapes_gan.safetensors", str(shapes_folder), num_classes=3)
    assert evaluate.main(["--feature-net", str(path), "--reference", "--checkpoint", str(checkpoint), "--samples", "30",
                          "--attention-seeds", "1", "--device", "cpu", "--json", str(tmp_path / "scores.json")]) == 0
    printed = capsys.readouterr().out
    assert "class agreement ceiling" in printed and "FD floor" in printed
    report = json.loads((tmp_path / "scores.json").read_text())
    reference = report["reference"]
    assert sum(reference["real_halves"]["sizes"]) == 3 * PER_CLASS and reference["real_halves"]["fd"] >= 0.0
    # The held-out split is drawn again from the record: the ceiling equals the accuracy the net recorded.
    assert reference["held_out"]["images"] == 18
    assert reference["held_out"]["class_agreement"]["balanced"] == pytest.approx(record["held_out_accuracy"]["balanced"])
    assert reference["chance_class_agreement"] == pytest.approx(1 / 3)
    (result,) = report["checkpoints"]
    assert result["samples"] == 30 and result["real_images"] == 3 * PER_CLASS and result["warnings"] == []
    assert math.isfinite(result["fd"]) and result["fd"] > reference["real_halves"]["fd"]
    assert len(result["class_agreement"]["per_class"]) == 3 and 0.0 <= result["class_agreement"]["share"] <= 1.0
    assert set(result["attention"]) == {"G.attn0", "D.attn0"}


def test_evaluation_redraws_the_held_out_split_the_feature_net_records(shapes_folder, shapes_net):
    _, net, record = shapes_net
    _, labels, _ = load_labelled_folder(shapes_folder, 16)
    moved_split = {**record, "held_out": {"fraction": 0.3, "seed": 5, "images": 36}}
    held_out = evaluate.RealFolder(net, moved_split).held_out(labels)
    np.testing.assert_array_equal(held_out, held_out_split(labels, 0.3, seed=5)[1])
    assert len(evaluate.RealFolder(net, record).held_out(labels)) == record["held_out"]["images"]


def test_evaluate_refuses_checkpoints_the_folder_net_cannot_score(tmp_path, shapes_net, capsys):
    path, _, _ = shapes_net
    for name, dataset, classes, message in (("faces", "faces", 5, "procedural faces"),
                                            ("other", "/data/other", 5, "5 classes")):
        checkpoint = save_untrained_checkpoint(tmp_path / f"{name}.safetensors", dataset, num_classes=classes)
        with pytest.raises(SystemExit):
            evaluate.main(["--feature-net", str(path), "--checkpoint", str(checkpoint), "--samples", "4",
                           "--device", "cpu"])
        assert message in capsys.readouterr().err
