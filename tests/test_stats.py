"""semigrad.stats against hand-computed values and exact bootstrap enumerations."""

import itertools
import math

import numpy as np
import pytest

from semigrad import stats

INF = math.inf


@pytest.mark.parametrize(("scores", "expected"), [
    ([100, 3, -50, 2, 6, 1, 5, 4], 3.5),        # n=8: drop 2 per end -> mean(2, 3, 4, 5)
    (list(range(1, 11)), 5.5),                    # n=10: drop 2 per end -> mean(3..8)
    ([9, 1, 5, 3, 7], 5.0),                       # n=5: drop 1 per end -> mean(3, 5, 7)
    ([1, 2, 9], 4.0),                             # n<4: the plain mean
    ([3, INF, 1, 2], 2.5),                        # the unsolved run lies in the dropped quarter
    ([1, INF, INF, INF], INF),                    # more than a quarter never solved
])
def test_iqm_hand_computed(scores, expected):
    assert stats.iqm(np.array(scores)) == expected


def test_iqm_along_an_axis():
    x = np.array([[1, 2, 3, 100], [0, 0, 4, 4]], dtype=float)
    assert stats.iqm(x, axis=1).tolist() == [2.5, 2.0]
    assert stats.iqm(x.T, axis=0).tolist() == [2.5, 2.0]


@pytest.mark.parametrize(("scores", "expected"), [
    ([3, 1, 2], 2.0), ([4, 1, 3, 2], 2.5), ([1, 2, INF, INF], INF), ([1, 2, 3, INF, INF], 3.0),
])
def test_median_hand_computed(scores, expected):
    assert stats.median(np.array(scores)) == expected


def test_quantile_matches_numpy_on_finite_data_and_accepts_inf():
    x = np.random.default_rng(1).normal(size=(7, 5))
    for q in (0.3, np.array([0.025, 0.5, 0.975])):
        for axis in (0, 1):
            np.testing.assert_allclose(stats.quantile(x, q, axis=axis),
                                       np.quantile(x, q, axis=axis))
    assert stats.quantile(np.array([0.0, 10.0]), 0.25) == 2.5
    assert stats.quantile(np.array([1.0, INF, INF]), 0.1) == INF   # 1 + 0.2 * (inf - 1)
    assert stats.quantile(np.array([1.0, 2.0, INF]), 0.5) == 2.0   # lands exactly on x_(1)
    with pytest.raises(ValueError, match="q must be in"):
        stats.quantile(np.arange(3.0), 1.5)


def test_percentile_interval_hand_computed():
    assert stats.percentile_interval(np.arange(101.0)) == pytest.approx((2.5, 97.5))
    assert stats.percentile_interval(np.arange(101.0), confidence=0.5) == (25.0, 75.0)


def test_bootstrap_distribution_of_the_iqm_hand_computed():
    # IQM of 4 draws from [0, 0, 0, 1] (drop one per end) is the mean of the two middle draws:
    # 0 with k <= 1 ones, 0.5 with k = 2, 1 with k >= 3, k ~ Binomial(4, 1/4). So
    # P(0) = (81 + 108) / 256, P(0.5) = 54 / 256, P(1) = (12 + 1) / 256.
    reps = 40_000
    boot = stats.stratified_bootstrap([0, 0, 0, 1], stats.iqm, reps=reps, seed=0)
    exact = {0.0: 189 / 256, 0.5: 54 / 256, 1.0: 13 / 256}
    assert set(np.unique(boot).tolist()) == set(exact)
    for value, p in exact.items():
        freq = np.mean(boot == value)
        assert abs(freq - p) < 4 * math.sqrt(p * (1 - p) / reps), (value, freq, p)
    # 95% CI: P(0) > 2.5% so the low end is 0; P(IQM <= 0.5) = 243/256 < 97.5% so the high end
    # is 1.
    assert stats.interval_estimate([0, 0, 0, 1], stats.iqm, reps=reps) == (0.0, 0.0, 1.0)


def test_bootstrap_is_stratified_per_task():
    # Task A = [0, 1] is resampled within itself, task B = [10] always contributes 10: the pooled
    # mean is (a1 + a2 + 10) / 3 with a_i in {0, 1}: 10/3 (1/4), 11/3 (1/2), 4 (1/4). A pooled,
    # unstratified bootstrap of [0, 1, 10] would also give 0, 10, 20/3, ...
    reps = 20_000
    boot = stats.stratified_bootstrap([[0, 1], [10]], lambda x: x.mean(axis=-1), reps=reps)
    values, counts = np.unique(np.round(boot * 3).astype(int), return_counts=True)
    assert values.tolist() == [10, 11, 12]
    for count, p in zip(counts, (0.25, 0.5, 0.25), strict=True):
        assert abs(count / reps - p) < 4 * math.sqrt(p * (1 - p) / reps)
    # two tasks constant within themselves: every resample is [0, 0, 0, 10, 10], whose IQM
    # (drop one per end) is mean(0, 0, 10): no uncertainty at all
    assert stats.interval_estimate([[0, 0, 0], [10, 10]], stats.iqm) == pytest.approx(
        (10 / 3, 10 / 3, 10 / 3))


def test_bootstrap_interval_matches_exact_enumeration():
    scores = np.array([3.1, 0.4, 7.7, 2.2, 5.0])
    resamples = np.array(list(itertools.product(scores, repeat=5)))  # all 5**5, equally likely
    exact = np.sort(stats.iqm(resamples))
    cdf = np.arange(1, exact.size + 1) / exact.size
    exact_low = exact[np.searchsorted(cdf, 0.025)]
    exact_high = exact[np.searchsorted(cdf, 0.975)]
    point, low, high = stats.interval_estimate(scores, stats.iqm, reps=20_000, seed=3)
    assert point == pytest.approx((2.2 + 3.1 + 5.0) / 3)
    spread = scores.max() - scores.min()
    assert abs(low - exact_low) < 0.03 * spread and abs(high - exact_high) < 0.03 * spread


def test_performance_profile_hand_computed():
    taus = np.array([0.0, 1.0, 2.5, 4.0])
    assert stats.performance_profile([1, 2, 3, 4], taus).tolist() == [1.0, 0.75, 0.5, 0.0]
    # tasks weigh the same: at tau=5, task A has 1/2 above, task B 3/4 -> 0.625 (pooled: 4/6)
    assert stats.performance_profile([[0, 10], [10, 10, 10, 0]], np.array([5.0])) == [0.625]


def test_performance_profile_bands():
    taus = np.linspace(0, 10, 11)
    frac, low, high = stats.performance_profile_ci([2, 4, 6, 8], taus, reps=5000)
    assert np.all(low <= frac) and np.all(frac <= high)
    assert low[0] == high[0] == 1.0 and low[-1] == high[-1] == 0.0   # below / above every run
    assert high[5] - low[5] > 0.4                                     # 4 runs: wide in between
    frac, low, high = stats.performance_profile_ci([5, 5, 5], taus)
    assert np.array_equal(low, high)


def test_bad_scores_are_refused():
    with pytest.raises(ValueError, match="nan"):
        stats.interval_estimate([1.0, float("nan")], stats.iqm)
    with pytest.raises(ValueError, match="at least one run"):
        stats.stratified_bootstrap([[1.0], []], stats.iqm)
