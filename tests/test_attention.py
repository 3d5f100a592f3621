"""The self-attention layer against the paper's equations, computed independently in NumPy."""
import numpy as np
import pytest
import torch

from sagan_viz.attention import SelfAttention, attend_explicit, attend_fused, set_attention_path


def numpy_sagan_attention(x, w_f, w_g, w_h, gamma):
    """Eqs. (1)-(3) written out literally: x is (C, N); returns (y (C, N), beta[j, i])."""
    f = w_f @ x  # (C_bar, N)
    g = w_g @ x
    h = w_h @ x  # (C, N)
    n = x.shape[1]
    s = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            s[i, j] = f[:, i] @ g[:, j]  # s_ij = f(x_i)^T g(x_j)
    beta = np.empty((n, n))  # beta[j, i]
    for j in range(n):
        e = np.exp(s[:, j] - s[:, j].max())
        beta[j] = e / e.sum()  # softmax over i
    o = np.stack([sum(beta[j, i] * h[:, i] for i in range(n)) for j in range(n)], axis=1)
    return gamma * o + x, beta


def effective_weight(conv) -> np.ndarray:
    """The spectrally normalised 1x1 weight the layer actually uses, as a (out, in) matrix."""
    return conv.weight.detach().double().squeeze(-1).squeeze(-1).numpy()


@pytest.fixture
def paper_layer():
    torch.manual_seed(0)
    layer = SelfAttention(16, "paper").double().eval()
    with torch.no_grad():
        layer.gamma.fill_(0.7)
    return layer


def test_layer_matches_numpy_equations_including_beta_orientation(paper_layer):
    x = torch.randn(1, 16, 3, 5, dtype=torch.float64)  # non-square: a row/column swap would show
    with torch.no_grad():
        y, beta = paper_layer.forward_with_attention(x)
    x_flat = x[0].flatten(1).numpy()  # (C, N), n = row * W + col
    y_ref, beta_ref = numpy_sagan_attention(
        x_flat, effective_weight(paper_layer.f), effective_weight(paper_layer.g),
        effective_weight(paper_layer.h), 0.7,
    )
    np.testing.assert_allclose(beta[0].numpy(), beta_ref, atol=1e-10)
    np.testing.assert_allclose(y[0].flatten(1).numpy(), y_ref, atol=1e-10)


def test_a_dominant_key_receives_the_attention_of_every_query(paper_layer):
    torch.manual_seed(1)
    x = torch.randn(1, 16, 4, 4, dtype=torch.float64) * 0.01
    dominant = 6  # key position i = 6 -> (row 1, col 2)
    # Make f(x_6) huge along the direction every g(x_j) points to, so s_{6,j} dominates for all j.
    with torch.no_grad():
        paper_layer.g.parametrizations.weight.original.zero_()
        paper_layer.g.parametrizations.weight.original[:, 0] = 1.0
        paper_layer.f.parametrizations.weight.original.zero_()
        paper_layer.f.parametrizations.weight.original[:, 1] = 1.0
    x[0, 0] = 1.0  # g(x_j) = (1, ..., 1) * sigma-normalised for every query j
    x[0, 1].view(-1)[dominant] = 50.0  # only key 6 has a large f
    with torch.no_grad():
        beta = paper_layer.attention_map(x)[0]
    assert beta.argmax(dim=1).tolist() == [dominant] * 16  # every query row peaks at that key
    assert beta[:, dominant].min() > 0.99


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_fused_and_explicit_paths_agree_and_rows_sum_to_one(variant):
    torch.manual_seed(2)
    layer = SelfAttention(32, variant).eval()  # eval: SN power iteration would change W between calls
    with torch.no_grad():
        layer.gamma.fill_(1.3)
    x = torch.randn(2, 32, 8, 8)
    layer.use_fused = True
    fused = layer(x)
    explicit, beta = layer.forward_with_attention(x)
    assert (fused - explicit).abs().max().item() <= 1e-5
    assert torch.allclose(beta.sum(dim=-1), torch.ones(2, 64), atol=1e-5)
    expected_keys = 64 if variant == "paper" else 16
    assert beta.shape == (2, 64, expected_keys)


def test_fused_function_equals_explicit_function_with_gradients():
    torch.manual_seed(3)
    q, k, v = (torch.randn(2, 50, 8, requires_grad=True) for _ in range(3))
    fused = attend_fused(q, k, v)
    (grad_fused,) = torch.autograd.grad(fused.square().sum(), q)
    explicit, _ = attend_explicit(q, k, v)
    (grad_explicit,) = torch.autograd.grad(explicit.square().sum(), q)
    assert (fused - explicit).abs().max() <= 1e-5
    assert (grad_fused - grad_explicit).abs().max() <= 1e-4


def test_official_variant_pools_keys_and_projects_values_back():
    layer = SelfAttention(64, "official")
    assert layer.h.weight.shape[:2] == (32, 64)  # h: C -> C/2
    assert layer.v.weight.shape[:2] == (64, 32)  # output projection C/2 -> C
    assert layer.f.weight.shape[:2] == (8, 64) and layer.g.weight.shape[:2] == (8, 64)  # C_bar = C/8
    assert layer.key_shape(16, 8) == (8, 4)
    x = torch.randn(1, 64, 16, 8)
    assert layer.attention_map(x).shape == (1, 128, 32)
    assert layer(x).shape == x.shape


def test_paper_variant_has_full_width_values_and_no_output_projection():
    layer = SelfAttention(64, "paper")
    assert layer.h.weight.shape[:2] == (64, 64)
    assert layer.v is None


def test_gamma_starts_at_exactly_zero_so_the_layer_is_the_identity():
    layer = SelfAttention(16)
    assert layer.gamma.item() == 0.0
    x = torch.randn(1, 16, 4, 4)
    assert torch.equal(layer(x), x)


def test_set_attention_path_switches_which_kernel_every_layer_runs():
    model = torch.nn.Sequential(SelfAttention(16), SelfAttention(16)).eval()
    x = torch.randn(1, 16, 32, 32)  # 1024 x 1024 scores: the fused path's size

    def kernels() -> set[str]:
        with torch.no_grad(), torch.profiler.profile() as profile:
            model(x)
        return {event.name for event in profile.events() if "scaled_dot_product" in event.name}

    set_attention_path(model, fused=False)
    assert kernels() == set()  # both layers explicit: beta materialised, no SDPA call
    set_attention_path(model, fused=True)
    assert kernels()


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_fused_path_uses_a_fused_kernel_not_the_n_by_n_math_fallback(variant):
    layer = SelfAttention(32, variant).eval()
    side = 32 if variant == "paper" else 64  # large enough for the fused path: N x N_key >= FUSED_MIN_SCORES
    x = torch.randn(1, 32, side, side, requires_grad=True)
    with torch.profiler.profile() as profile:
        layer(x).sum().backward()
    names = {event.name for event in profile.events()}
    assert "aten::_scaled_dot_product_attention_math" not in names
    assert any("flash" in name or "efficient" in name for name in names)


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_small_maps_take_the_explicit_path_and_give_the_same_output(variant):
    layer = SelfAttention(32, variant).eval()
    with torch.no_grad():
        layer.gamma.fill_(0.9)
    x = torch.randn(2, 32, 16, 16)  # 256 x 256 (or 256 x 64) scores: below FUSED_MIN_SCORES
    with torch.profiler.profile() as profile:
        fast = layer(x)
    names = {event.name for event in profile.events()}
    assert not any("scaled_dot_product" in name for name in names)
    p = layer.project(x)
    fused = layer.output_from_attended(x, attend_fused(p.query, p.key, p.value))
    torch.testing.assert_close(fast, fused, atol=1e-5, rtol=1e-5)
