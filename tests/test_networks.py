"""Generator and discriminator: spectral norm everywhere, shapes, attention placement, conditioning, config."""
import json

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from sagan_viz.attention import SelfAttention
from sagan_viz.config import ConfigError, ModelConfig, feature_channels
from sagan_viz.networks import Discriminator, Generator, attention_layer_names, build_networks, gammas
from training.loop import train
from training.options import TrainConfig

TINY = dict(resolution=32, g_channels=8, d_channels=8, z_dim=16)



def sn_target_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every layer with a weight matrix that SAGAN normalises (section 4.1): conv, linear, embedding."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]


@pytest.mark.parametrize("variant", ["paper", "official"])
@pytest.mark.parametrize("num_classes", [0, 3])
def test_every_conv_linear_and_embedding_in_G_and_D_is_spectrally_normalised(variant, num_classes):
    config = ModelConfig(**TINY, num_classes=num_classes, attention_variant=variant, g_attention=(8, 16))
    for model in build_networks(config):
        layers = sn_target_modules(model)
        assert layers, "no layers found: the walk itself is broken"
        has_embedding = any(isinstance(m, nn.Embedding) for _, m in layers)
        assert has_embedding == (num_classes > 0)
        for name, module in layers:
            assert parametrize.is_parametrized(module, "weight"), f"{type(model).__name__}.{name} has no SN"
            (parametrization,) = module.parametrizations.weight
            assert type(parametrization).__name__ == "_SpectralNorm", f"{name}: {parametrization}"
    if variant == "official":  # the output projection v exists only in this variant, and is normalised too
        generator = build_networks(config)[0]
        assert all(parametrize.is_parametrized(layer.v, "weight") for _, layer in generator.attention_layers())


@pytest.mark.parametrize(
    "resolution, base, g_attention, d_attention, batch",
    [
        (32, 8, (8, 16), (16, 8), 2),
        (64, 4, (8, 16), (16, 8), 2),
        (128, 2, (8, 16), (16, 8), 1),  # cheap: one image, 2-channel base
    ],
)
@pytest.mark.parametrize("variant", ["paper", "official"])
def test_output_shapes_and_attention_layers_sit_at_the_configured_feature_sizes(
    resolution, base, g_attention, d_attention, batch, variant
):
    config = ModelConfig(resolution=resolution, g_channels=base, d_channels=base, z_dim=8,
                         g_attention=g_attention, d_attention=d_attention, attention_variant=variant)
    torch.manual_seed(0)
    generator, discriminator = build_networks(config)
    seen: dict[str, tuple[int, int, int]] = {}  # layer name -> (C, H, W) of its input

    def remember(name):
        return lambda module, inputs: seen.__setitem__(name, tuple(inputs[0].shape[1:]))

    for prefix, model in (("G", generator), ("D", discriminator)):
        for name, layer in model.attention_layers():
            layer.register_forward_pre_hook(remember(f"{prefix}.{name}"))
    images = generator(torch.randn(batch, 8))
    scores = discriminator(images)
    assert images.shape == (batch, 3, resolution, resolution)
    assert scores.shape == (batch,)
    assert images.abs().max() <= 1.0  # tanh output

    assert [name for name, _ in generator.attention_layers()] == ["attn0", "attn1"]
    assert [name for name, _ in discriminator.attention_layers()] == ["attn0", "attn1"]
    assert attention_layer_names(config) == ["G.attn0", "G.attn1", "D.attn0", "D.attn1"]
    assert list(gammas(generator, discriminator)) == attention_layer_names(config)
    # Forward order: G grows 8 -> 16, D shrinks 16 -> 8.
    expected = {
        "G.attn0": (feature_channels(base, resolution, 8), 8, 8),
        "G.attn1": (feature_channels(base, resolution, 16), 16, 16),
        "D.attn0": (feature_channels(base, resolution, 16), 16, 16),
        "D.attn1": (feature_channels(base, resolution, 8), 8, 8),
    }
    assert seen == expected


def test_a_network_without_attention_has_no_attention_layers():
    config = ModelConfig(**{**TINY, "g_attention": (), "d_attention": ()})
    generator, discriminator = build_networks(config)
    assert attention_layer_names(config) == []
    assert not any(isinstance(m, SelfAttention) for model in (generator, discriminator) for m in model.modules())
    assert generator(torch.randn(2, 16)).shape == (2, 3, 32, 32)


def conditional_pair():
    torch.manual_seed(1)
    config = ModelConfig(**TINY, num_classes=3)
    generator, discriminator = build_networks(config)
    return generator.eval(), discriminator.eval()  # eval: no batch coupling, no SN power step


def test_conditional_generator_refuses_to_run_without_labels():
    generator, discriminator = conditional_pair()
    with pytest.raises(ValueError, match="labels"):
        generator(torch.randn(2, 16))
    with pytest.raises(ValueError, match="labels"):
        discriminator(torch.randn(2, 3, 32, 32))


def test_conditional_generator_draws_different_images_for_different_labels_from_the_same_z():
    generator, _ = conditional_pair()
    z = torch.randn(1, 16).expand(3, 16)
    with torch.no_grad():
        images = generator(z, torch.tensor([0, 1, 2]))
        again = generator(z, torch.tensor([0, 1, 2]))
    assert torch.equal(images, again)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert (images[a] - images[b]).abs().max() > 1e-4, f"labels {a} and {b} give the same image"


def test_projection_discriminator_is_linear_in_the_class_embedding():
    _, discriminator = conditional_pair()
    discriminator.eval()
    # Class 0 embeds to zero (only the unconditional score is left), class 2 to twice class 1: the
    # projection term <embedding(y), features> must then give class 2 twice class 1's shift.
    with torch.no_grad():
        weight = discriminator.embedding.parametrizations.weight.original
        weight[0].zero_()
        weight[2].copy_(2 * weight[1])
        images = (torch.rand(1, 3, 32, 32) * 2 - 1).expand(3, -1, -1, -1)
        scores = discriminator(images, torch.tensor([0, 1, 2]))
    shift_one, shift_two = scores[1] - scores[0], scores[2] - scores[0]
    assert shift_one.abs() > 1e-4, "the score ignores the label"
    assert torch.allclose(shift_two, 2 * shift_one, atol=1e-5)


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_gamma_starts_at_exactly_zero_in_every_attention_layer(variant):
    config = ModelConfig(**{**TINY, "g_attention": (8, 16, 32), "d_attention": (16, 8, 4)}, attention_variant=variant)
    generator, discriminator = build_networks(config)
    values = gammas(generator, discriminator)
    assert len(values) == 6
    assert all(value == 0.0 for value in values.values()), values
    assert all(layer.gamma.item() == 0.0 for model in (generator, discriminator) for _, layer in model.attention_layers())


def test_gamma_moves_away_from_zero_after_a_few_steps_of_the_real_trainer(tmp_path):
    options = TrainConfig(out_dir=str(tmp_path), data_size=64, steps=3, batch_size=4, checkpoint_every=100,
                          sample_every=100, history_every=1, progress=False, device="cpu")
    config = ModelConfig(**{**TINY, "g_attention": (8, 16), "d_attention": (16, 8)})
    state = train(options, config)
    history = state.history.gamma
    assert list(history) == attention_layer_names(config)
    for name, series in history.items():
        assert series[0] == 0.0, f"{name} did not start at 0"
        assert len(series) == 4 and all(value != 0.0 for value in series[1:]), f"{name} never moved: {series}"
    assert gammas(state.generator, state.discriminator) == {name: series[-1] for name, series in history.items()}


def test_model_config_survives_a_json_round_trip():
    config = ModelConfig(resolution=64, z_dim=32, g_channels=8, d_channels=4, num_classes=5,
                         g_attention=(16, 8), d_attention=(8,), attention_variant="official")
    data = json.loads(json.dumps(config.to_dict()))
    restored = ModelConfig.from_dict(data)
    assert restored == config and hash(restored) == hash(config)
    assert restored.g_attention == (8, 16)  # normalised: sorted tuple


def test_model_config_from_dict_refuses_unknown_fields():
    data = {**ModelConfig().to_dict(), "g_chanels": 64}
    with pytest.raises(ConfigError, match="g_chanels"):
        ModelConfig.from_dict(data)


@pytest.mark.parametrize(
    "fields, named",
    [
        (dict(resolution=32, g_attention=(64,)), "64x64"),
        (dict(resolution=32, d_attention=(32,)), "32x32"),
        (dict(resolution=64, g_attention=(4,)), "4x4"),
        (dict(resolution=32, d_attention=(2,)), "2x2"),
    ],
)
def test_model_config_names_an_attention_size_the_network_does_not_have(fields, named):
    with pytest.raises(ConfigError, match=named):
        ModelConfig(**fields)


def test_model_config_refuses_attention_on_fewer_than_eight_channels():
    with pytest.raises(ConfigError, match="16x16.*fewer than 8 channels"):
        ModelConfig(resolution=32, g_channels=2, g_attention=(16,))  # 2 * 32/16 = 4 channels
    Generator(ModelConfig(resolution=32, g_channels=4, d_channels=4, g_attention=(16,), d_attention=(16,)))
    Discriminator(ModelConfig(resolution=32, g_channels=4, d_channels=4, g_attention=(16,), d_attention=(16,)))
