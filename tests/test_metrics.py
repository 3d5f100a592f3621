"""Scores without downloads: mirror asymmetry, eye colours, Fréchet distance, FeatureNet, attention statistics, the CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from sagan_viz import load_checkpoint
from sagan_viz.checkpoint import CheckpointError, save_checkpoint
from sagan_viz.config import ModelConfig
from sagan_viz.feature_net import FeatureNet, FeatureNetConfig, load_feature_net, save_feature_net
from sagan_viz.metrics import (
    EYE_WINDOW_ABS_X,
    EYE_WINDOW_Y,
    eye_colour_agreement,
    eye_colours,
    frechet_distance,
    mirror_asymmetry,
)
from sagan_viz.networks import build_networks
from sagan_viz.sampling import attention_statistics, generated_images
from training import evaluate
from training.faces import face_parameters, render_faces
from training.feature_net import FeatureNetTraining, train_feature_net

TINY = dict(g_channels=16, d_channels=16, z_dim=16)


def save_untrained_checkpoint(path, dataset="faces", **overrides):
    """A freshly initialised tiny G/D saved as a checkpoint (no training needed for shapes and ranges)."""
    torch.manual_seed(0)
    config = ModelConfig(**{**TINY, **overrides})
    generator, discriminator = build_networks(config)
    save_checkpoint(path, config=config, generator=generator, generator_ema=generator, discriminator=discriminator,
                    step=0, wall_time_s=0.0, dataset=dataset, history={}, training={"seed": 0})
    return path


@pytest.fixture(scope="module")
def tiny_checkpoint_path(tmp_path_factory):
    return save_untrained_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny.safetensors")


@pytest.fixture(scope="module")
def tiny_model(tiny_checkpoint_path):
    return load_checkpoint(tiny_checkpoint_path, "cpu")


def test_mirror_asymmetry_is_zero_on_the_procedural_faces():
    images, _ = render_faces(16, 32, seed=0)
    assert mirror_asymmetry(images) == 0.0


def test_mirror_asymmetry_is_positive_on_a_lopsided_image():
    images = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    assert mirror_asymmetry(images) > 0.1


def test_mirror_asymmetry_matches_a_hand_computed_case_and_ignores_top_bottom_asymmetry():
    image = np.zeros((1, 2, 2, 3), np.uint8)
    image[0, 0, 0] = (255, 0, 0)  # top-left red; the rest black
    # The top row differs from its mirror by 255 in one channel at both pixels: 510 / (12 values * 255).
    assert mirror_asymmetry(image) == pytest.approx(1 / 6)
    rows = np.zeros((1, 2, 2, 3), np.uint8)
    rows[0, 0] = 200  # a bright top row over a dark bottom row is left-right symmetric
    assert mirror_asymmetry(rows) == 0.0


def test_mirror_asymmetry_rejects_float_images():
    with pytest.raises(ValueError, match="uint8"):
        mirror_asymmetry(np.zeros((1, 4, 4, 3), np.float32))


def test_eye_window_holds_every_eye_the_face_generator_can_draw():
    faces = face_parameters(3000, seed=11)
    assert np.all(faces.eye_offset_x - faces.eye_radius_x >= EYE_WINDOW_ABS_X[0])
    assert np.all(faces.eye_offset_x + faces.eye_radius_x <= EYE_WINDOW_ABS_X[1])
    assert np.all((faces.eye_centre_y >= EYE_WINDOW_Y[0]) & (faces.eye_centre_y <= EYE_WINDOW_Y[1]))


@pytest.mark.parametrize("resolution", [32, 64])
def test_eye_colours_finds_the_true_iris_colour_of_real_faces(resolution):
    images, _ = render_faces(200, resolution, seed=5)
    truth = face_parameters(200, seed=5).eye_colour / 255.0
    left, right = eye_colours(images)
    assert np.abs(left - truth).max() <= 2 / 255 and np.abs(right - truth).max() <= 2 / 255
    assert eye_colour_agreement(images) == 1.0


def test_eye_colour_agreement_drops_to_chance_when_halves_come_from_different_faces():
    images, _ = render_faces(400, 32, seed=6)
    assert eye_colour_agreement(evaluate.chimeras(images)) < 0.15
    grey = np.full((4, 32, 32, 3), 128, np.uint8)  # identical but colourless eyes do not count
    assert eye_colour_agreement(grey) == 0.0


def test_frechet_distance_matches_the_closed_form_for_one_dimension():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 2.0, (500, 1)), rng.normal(-0.5, 0.5, (300, 1))
    expected = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    # Columns orthogonal to each other and to the ones vector: sample covariances exactly diagonal.
    n = 200
    basis, _ = np.linalg.qr(np.column_stack([np.ones(n), np.random.default_rng(1).normal(size=(n, 3))]))
    columns = basis[:, 1:] * math.sqrt(n - 1)  # unit sample variance each
    scale_a, scale_b = np.array([1.0, 2.0, 0.5]), np.array([3.0, 0.1, 0.5])
    mean_a, mean_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, -1.0])
    a, b = columns * scale_a + mean_a, columns * scale_b + mean_b
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((scale_a - scale_b) ** 2)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_matches_the_two_by_two_trace_formula_for_correlated_features():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(400, 2)) @ np.array([[1.0, 0.8], [0.0, 0.6]])
    b = rng.normal(size=(400, 2)) @ np.array([[0.5, -0.3], [0.2, 1.5]]) + 1.0
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    product = cov_a @ cov_b  # tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)) for a 2x2 M with eigenvalues >= 0
    trace_root = math.sqrt(np.trace(product) + 2 * math.sqrt(np.linalg.det(product)))
    expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_is_zero_for_identical_sets_symmetric_and_finite_when_singular():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(300, 16)), rng.normal(0.3, 1.2, size=(250, 16))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    few = rng.normal(size=(5, 16))  # rank-deficient covariance
    assert math.isfinite(frechet_distance(few, b)) and frechet_distance(few, b) >= 0.0
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(a, b[:, :8])


def test_feature_net_gives_one_feature_vector_per_image_at_any_input_size():
    net = FeatureNet(FeatureNetConfig(width=8, feature_dim=16)).eval()
    small, _ = render_faces(5, 32, seed=0)
    large, _ = render_faces(3, 64, seed=0)
    assert net.features(small).shape == (5, 16)
    assert net.features(large).shape == (3, 16)  # resized to 32 first
    assert net.features(small[:0]).shape == (0, 16)


def test_feature_net_file_round_trips_and_a_gan_checkpoint_is_refused(tmp_path):
    net = FeatureNet(FeatureNetConfig(width=8, feature_dim=16)).eval()
    save_feature_net(tmp_path / "net.safetensors", net, {"held_out_accuracy": {"mouth": 0.5}})
    loaded, record = load_feature_net(tmp_path / "net.safetensors")
    images, _ = render_faces(4, 32, seed=1)
    np.testing.assert_array_equal(loaded.features(images), net.features(images))
    assert record == {"held_out_accuracy": {"mouth": 0.5}}
    checkpoint = save_untrained_checkpoint(tmp_path / "gan.safetensors")
    with pytest.raises(CheckpointError, match="not a sagan-viz feature net"):
        load_feature_net(checkpoint)


def test_batched_generation_equals_generate_seed_by_seed(tiny_model):
    images = generated_images(tiny_model, [4, 0, 9], batch_size=2)
    for image, seed in zip(images, [4, 0, 9]):
        np.testing.assert_array_equal(image, tiny_model.generate(seed).image)


def test_attention_statistics_are_finite_and_in_range_for_every_layer(tiny_model, tmp_path):
    statistics = attention_statistics(tiny_model, seeds=[0, 1, 2])
    assert set(statistics) == set(tiny_model.attention_layer_names()) == {"G.attn0", "D.attn0"}
    for stats in statistics.values():
        assert set(stats) == {"distance", "entropy", "query_dependence", "gamma"}
        assert 0.0 < stats["distance"] < math.sqrt(2)  # image width 1: no two cells are further apart
        assert 0.0 <= stats["entropy"] <= 1.0 and 0.0 <= stats["query_dependence"] <= 1.0
        assert stats["gamma"] == 0.0  # untrained: attention starts switched off
    plain = load_checkpoint(save_untrained_checkpoint(tmp_path / "plain.safetensors", g_attention=(),
                                                      d_attention=()), "cpu")
    assert attention_statistics(plain, seeds=[0]) == {}


def test_tiny_feature_net_training_reports_held_out_accuracy():
    options = FeatureNetTraining(steps=3, batch_size=8, train_faces=32, held_out_faces=16, width=8, feature_dim=16)
    net, record = train_feature_net(options, log=lambda line: None)
    assert net.config.feature_dim == 16 and record["resolution"] == 32
    assert set(record["held_out_accuracy"]) == {"mouth", "eye_hue", "skin_tone", "hair", "background_hue"}
    assert all(0.0 <= value <= 1.0 for value in record["held_out_accuracy"].values())


def test_evaluate_cli_prints_and_writes_scores_for_a_tiny_checkpoint(tiny_checkpoint_path, tmp_path, capsys):
    checkpoint = tiny_checkpoint_path
    save_feature_net(tmp_path / "net.safetensors", FeatureNet(FeatureNetConfig(width=8, feature_dim=16)), {})
    assert evaluate.main(["--checkpoint", str(checkpoint), "--reference", "--samples", "24", "--attention-seeds", "2",
                          "--feature-net", str(tmp_path / "net.safetensors"), "--device", "cpu",
                          "--json", str(tmp_path / "scores.json")]) == 0
    printed = capsys.readouterr().out
    assert "FD" in printed and "G.attn0" in printed and "mirror asymmetry" in printed
    report = json.loads((tmp_path / "scores.json").read_text())
    assert report["reference"]["real"]["mirror_asymmetry"] == 0.0
    assert report["reference"]["real"]["eye_colour_agreement"] == 1.0
    (result,) = report["checkpoints"]
    assert math.isfinite(result["fd"]) and result["fd"] > 0 and 0 <= result["mirror_asymmetry"] <= 1
    assert set(result["attention"]) == {"G.attn0", "D.attn0"}


def test_evaluate_refuses_a_checkpoint_not_trained_on_the_faces(tmp_path, capsys):
    checkpoint = save_untrained_checkpoint(tmp_path / "cifar.safetensors", dataset="cifar10:/data")
    save_feature_net(tmp_path / "net.safetensors", FeatureNet(FeatureNetConfig(width=8, feature_dim=16)), {})
    with pytest.raises(SystemExit):
        evaluate.main(["--checkpoint", str(checkpoint), "--samples", "4", "--feature-net",
                       str(tmp_path / "net.safetensors"), "--device", "cpu"])
    assert "procedural faces" in capsys.readouterr().err


def test_the_bundled_face_feature_net_is_package_data_read_by_the_bounded_reader(tmp_path):
    from sagan_viz.checkpoint import CheckpointError
    from sagan_viz.feature_net import bundled_feature_net

    net, record = load_feature_net(bundled_feature_net("faces"))
    assert net.config.resolution == 32 and record["held_out_accuracy"]["mouth"] > 0.9
    truncated = tmp_path / "net.safetensors"
    truncated.write_bytes(bundled_feature_net("faces").read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="net.safetensors"):
        load_feature_net(truncated)
