"""Peaks, distance, entropy and query-dependence on hand-made beta whose answers are known."""
import math

import numpy as np
import pytest
import torch

from sagan_viz.analysis import (
    attention_entropy,
    find_peaks,
    mean_attention_distance,
    peaks_mass_share,
    query_dependence,
)


def planted_map() -> np.ndarray:
    """A 6x9 map (sums to 1) with three bumps of known mass and a lone 0.1 cell far from them."""
    beta = np.zeros((6, 9))
    beta[1, 1], beta[0, 1], beta[1, 2] = 0.2, 0.05, 0.05  # mass 0.30, highest value
    beta[4, 7] = 0.25  # mass 0.25
    beta[4, 2], beta[5, 2], beta[3, 3], beta[5, 1] = 0.11, 0.08, 0.07, 0.09  # mass 0.35, lowest peak value
    beta[0, 8] = 0.1  # mass 0.10
    return beta


def test_planted_peaks_are_found_at_their_cells_sorted_by_mass():
    peaks = find_peaks(planted_map(), max_peaks=3, radius=1)
    assert [peak.cell for peak in peaks] == [(4, 2), (1, 1), (4, 7)]
    assert [peak.mass for peak in peaks] == pytest.approx([0.35, 0.30, 0.25])
    assert [peak.value for peak in peaks] == pytest.approx([0.11, 0.2, 0.25])


def test_peaks_mass_share_counts_only_the_arrowed_regions():
    assert peaks_mass_share(find_peaks(planted_map(), max_peaks=3)) == pytest.approx(0.9)
    assert peaks_mass_share(find_peaks(planted_map(), max_peaks=4)) == pytest.approx(1.0)


def test_peaks_accept_torch_tensors_and_keep_the_grid_orientation():
    beta = torch.zeros(3, 7)
    beta[2, 5] = 1.0  # row 2, column 5: a swap of rows and columns would not even fit the grid
    (peak,) = find_peaks(beta, max_peaks=3)
    assert peak.cell == (2, 5) and peak.mass == pytest.approx(1.0)


def test_peak_regions_never_overlap():
    rng = np.random.default_rng(0)
    beta = rng.dirichlet(np.full(16 * 16, 0.2)).reshape(16, 16)
    for radius in (1, 2):
        peaks = find_peaks(beta, max_peaks=10, radius=radius)
        assert len(peaks) >= 3
        for index, first in enumerate(peaks):
            for second in peaks[index + 1 :]:
                distance = max(abs(first.cell[0] - second.cell[0]), abs(first.cell[1] - second.cell[1]))
                assert distance > 2 * radius
        assert peaks_mass_share(peaks) <= 1.0 + 1e-9


def test_a_shoulder_next_to_a_peak_is_not_a_second_peak():
    beta = np.zeros((5, 5))
    beta[2, 2], beta[2, 3] = 0.6, 0.4  # one bump two cells wide
    assert [peak.cell for peak in find_peaks(beta, max_peaks=3)] == [(2, 2)]


def test_entropy_is_zero_for_one_hot_rows_and_one_for_uniform_rows():
    assert attention_entropy(np.eye(16)) == pytest.approx(0.0, abs=1e-12)
    assert attention_entropy(np.full((8, 16), 1 / 16)) == pytest.approx(1.0)
    assert 0.0 < attention_entropy(np.random.default_rng(1).dirichlet(np.ones(16), size=4)) < 1.0


def test_query_dependence_is_zero_when_every_query_attends_alike():
    row = np.random.default_rng(2).dirichlet(np.ones(20))
    assert query_dependence(np.tile(row, (12, 1))) == pytest.approx(0.0, abs=1e-12)


def test_query_dependence_is_near_one_for_disjoint_one_hot_rows():
    assert query_dependence(np.eye(10)) > 0.9
    assert query_dependence(torch.eye(10), max_pairs=50, seed=3) > 0.9


def test_query_dependence_sampled_pairs_estimate_the_full_mean():
    beta = np.random.default_rng(4).dirichlet(np.full(64, 0.3), size=40)
    assert query_dependence(beta, max_pairs=4000) == pytest.approx(query_dependence(beta), abs=0.02)


def test_mean_distance_when_every_query_looks_at_the_top_left_key():
    beta = np.zeros((4, 4))
    beta[:, 0] = 1.0  # 2x2 queries all attend key cell (0, 0), centred at (0.25, 0.25)
    expected = (0 + 0.5 + 0.5 + math.sqrt(0.5)) / 4
    assert mean_attention_distance(beta, (2, 2), (2, 2)) == pytest.approx(expected)


def test_mean_distance_is_zero_for_self_attention_and_lines_up_pooled_keys():
    assert mean_attention_distance(np.eye(16), (4, 4), (4, 4)) == pytest.approx(0.0)
    # 4x4 queries, 2x2 pooled keys: each query attends the key cell covering it, whose centre is
    # where its 2x2 block of queries meet, 1/8 of the width away along each axis.
    beta = np.zeros((16, 4))
    for row in range(4):
        for column in range(4):
            beta[row * 4 + column, (row // 2) * 2 + column // 2] = 1.0
    assert mean_attention_distance(beta, (4, 4), (2, 2)) == pytest.approx(math.sqrt(2) / 8)


def test_mean_distance_uses_image_width_as_the_unit_on_tall_grids():
    beta = np.array([[1.0, 0.0], [1.0, 0.0]])  # a 2x1 grid: the image is twice as tall as wide
    assert mean_attention_distance(beta, (2, 1), (2, 1)) == pytest.approx(0.5)  # distances 0 and 1


def test_distance_rejects_beta_that_does_not_fit_its_grids():
    with pytest.raises(ValueError, match="key"):
        mean_attention_distance(np.full((16, 16), 1 / 16), (4, 4), (2, 2))


def test_no_peak_stands_out_of_a_uniform_map_but_a_real_one_does():
    uniform = np.full((8, 8), 1 / 64)
    assert find_peaks(uniform) == []
    nearly = uniform * (1 + 0.04 * np.sin(np.arange(64)).reshape(8, 8))  # step 0: within 4% of uniform
    assert find_peaks(nearly / nearly.sum()) == []
    one = np.full((8, 8), 0.5 / 63)
    one[2, 5] = 0.5  # 32x uniform
    [peak] = find_peaks(one)
    assert peak.cell == (2, 5)
