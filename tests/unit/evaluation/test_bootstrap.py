"""Bootstrap intervals and the paired bootstrap test."""

from __future__ import annotations

import numpy as np
import pytest

from deepsynth_cli.evaluation.bootstrap import bootstrap_mean, paired_bootstrap


def _scores(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).beta(2, 5, size=n)


def test_interval_contains_the_mean_and_is_seeded() -> None:
    values = _scores(200)
    interval = bootstrap_mean(values, resamples=1000, seed=7)
    assert interval.mean == pytest.approx(values.mean())
    assert interval.low < interval.mean < interval.high
    assert (interval.n, interval.resamples, interval.confidence) == (200, 1000, 0.95)
    assert bootstrap_mean(values, resamples=1000, seed=7) == interval
    assert bootstrap_mean(values, resamples=1000, seed=8) != interval


def test_interval_shrinks_with_more_rows() -> None:
    small = bootstrap_mean(_scores(100), resamples=1000)
    large = bootstrap_mean(_scores(10_000), resamples=1000)
    assert (large.high - large.low) < (small.high - small.low) / 5  # ~1/sqrt(100) = 1/10 in theory
    assert large.low < large.mean < large.high


def test_interval_width_is_about_the_normal_one() -> None:
    values = _scores(2_000)
    interval = bootstrap_mean(values, resamples=2000)
    normal_half_width = 1.96 * values.std() / np.sqrt(values.size)
    assert (interval.high - interval.low) / 2 == pytest.approx(normal_half_width, rel=0.1)


def test_single_row_and_constant_rows_have_a_zero_width_interval() -> None:
    interval = bootstrap_mean([0.4])
    assert [interval.mean, interval.low, interval.high] == pytest.approx([0.4, 0.4, 0.4])
    assert bootstrap_mean([0.0] * 10).high == 0.0


@pytest.mark.parametrize("values", [[], [float("nan"), 0.1]])
def test_bad_input_is_refused(values: list[float]) -> None:
    with pytest.raises(ValueError):
        bootstrap_mean(values)


def test_paired_test_gives_a_small_p_value_when_the_model_is_clearly_better() -> None:
    baseline = _scores(300)
    noise = np.random.default_rng(3).normal(0.05, 0.05, size=300)
    result = paired_bootstrap(np.clip(baseline + noise, 0, 1), baseline)
    assert result.delta > 0.04
    assert result.p_value < 0.01
    assert result.low > 0


def test_paired_test_gives_one_half_when_the_systems_are_identical() -> None:
    scores = _scores(300)
    result = paired_bootstrap(scores, scores.copy())
    assert result.p_value == 0.5
    assert result.delta == result.low == result.high == 0.0


def test_paired_test_is_near_one_half_when_differences_cancel_out() -> None:
    baseline = _scores(400)
    differences = np.tile([0.1, -0.1], 200)  # the model wins and loses by the same margins
    result = paired_bootstrap(baseline + differences, baseline, resamples=2000)
    assert result.delta == pytest.approx(0.0, abs=1e-12)
    assert 0.35 < result.p_value < 0.65
    assert result.low < 0 < result.high


def test_paired_test_gives_a_large_p_value_when_the_model_is_worse() -> None:
    baseline = _scores(300)
    result = paired_bootstrap(baseline - 0.05, baseline)
    assert result.p_value == 1.0


def test_paired_test_needs_the_same_rows() -> None:
    with pytest.raises(ValueError, match="same rows"):
        paired_bootstrap([0.1, 0.2], [0.1])
