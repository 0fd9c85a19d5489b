"""The model-card metrics against their textbook definitions."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pacs_ai.registry.metrics import (
    auc_delong,
    dice,
    operating_point,
    study_level_report,
    summary,
    threshold_youden,
    wilson_interval,
)


def delong_reference(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """AUC and its DeLong variance by the pairwise definition (DeLong et al. 1988)."""
    positives, negatives = scores[labels], scores[~labels]
    psi = (positives[:, None] > negatives[None]).astype(float) + 0.5 * (
        positives[:, None] == negatives[None]
    )
    auc = psi.mean()
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    variance = v10.var(ddof=1) / positives.size + v01.var(ddof=1) / negatives.size
    return float(auc), float(variance)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 6)), min_size=6, max_size=60).filter(
        lambda pairs: sum(p for p, _ in pairs) >= 2 and sum(not p for p, _ in pairs) >= 2
    )
)
def test_auc_and_delong_match_the_pairwise_definition(pairs: list[tuple[bool, int]]) -> None:
    labels = np.array([p for p, _ in pairs])
    scores = np.array([s for _, s in pairs], dtype=float)  # small integers: many ties
    auc, variance = delong_reference(labels, scores)
    estimate = auc_delong(labels, scores)
    assert estimate.value == pytest.approx(auc)
    half = NormalDist().inv_cdf(0.975) * np.sqrt(variance)
    assert estimate.low == pytest.approx(max(0.0, auc - half), abs=1e-9)
    assert estimate.high == pytest.approx(min(1.0, auc + half), abs=1e-9)


def test_auc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="at least one positive and one negative"):
        auc_delong([True, True], [0.1, 0.2])


def test_wilson_interval_known_values() -> None:
    # Newcombe (1998), table I: 81/263 -> 0.2553 to 0.3662.
    interval = wilson_interval(81, 263)
    assert (round(interval.low, 4), round(interval.high, 4)) == (0.2553, 0.3662)
    assert wilson_interval(10, 10).high == 1.0 and wilson_interval(10, 10).low < 1.0


def test_youden_threshold_is_the_best_cut_placed_midway() -> None:
    rng = np.random.default_rng(3)
    labels = rng.random(300) < 0.5
    scores = rng.normal(labels * 1.5, 1.0)
    threshold = threshold_youden(labels, scores)

    def youden(cut: float) -> float:
        point = operating_point(labels, scores, cut)
        return point.sensitivity.value + point.specificity.value - 1

    assert all(youden(threshold) >= youden(cut) for cut in np.linspace(-3, 4, 300))
    below, above = scores[scores < threshold].max(), scores[scores >= threshold].min()
    assert threshold == pytest.approx((below + above) / 2)
    # Separable scores: the threshold sits in the middle of the gap.
    assert threshold_youden([0, 0, 1, 1], [0.0, 0.2, 0.9, 1.0]) == pytest.approx(0.55)


def test_dice_and_summary() -> None:
    a = np.zeros((4, 4), dtype=bool)
    b = np.zeros((4, 4), dtype=bool)
    assert dice(a, b) == 1.0
    a[0, :2] = True
    b[0, 1:3] = True
    assert dice(a, b) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="shapes differ"):
        dice(a, b[:2])
    mean = summary([0.5, 0.7, 0.9])
    assert mean.value == pytest.approx(0.7) and mean.low < 0.7 < mean.high


def test_report_is_json_ready() -> None:
    report = study_level_report([False, True, False, True], [0.1, 0.9, 0.4, 0.35], 0.3)
    assert report["auc"] == {"value": 0.75, "low": report["auc"]["low"], "high": 1.0}  # type: ignore[index]
    assert report["confusion"] == {"tp": 2, "fn": 0, "tn": 1, "fp": 1}
