"""Metrics a model card reports: AUC with its DeLong interval, operating point, Dice.

They are computed here, in the package, so that the training scripts, the evaluation
scripts and the tests that hold the shipped weights to their model card all use one
definition. Scores are "higher means more likely positive"; a study is called positive when
its score is at or above the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class OperatingPoint:
    """Sensitivity and specificity of a threshold, with Wilson intervals and the counts."""

    threshold: float
    sensitivity: Interval
    specificity: Interval
    true_positives: int
    false_negatives: int
    true_negatives: int
    false_positives: int


def _split(labels: ArrayLike, scores: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    y = np.asarray(labels, dtype=bool).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    positives, negatives = s[y], s[~y]
    if positives.size == 0 or negatives.size == 0:
        raise ValueError("an AUC needs at least one positive and one negative case")
    return positives, negatives


def _midranks(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Ranks 1..n with ties given the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    ranks = np.empty(values.size, dtype=np.float64)
    start = 0
    while start < values.size:
        end = start
        while end + 1 < values.size and ordered[end + 1] == ordered[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def auc_delong(labels: ArrayLike, scores: ArrayLike, level: float = 0.95) -> Interval:
    """AUC with the DeLong, DeLong and Clarke-Pearson (1988) confidence interval.

    The AUC is the probability that a positive scores above a negative, ties counting half
    (the Mann-Whitney statistic over ``m * n``).

    The variance comes from the structural components of the Mann-Whitney statistic,
    computed with midranks as Sun and Xu (2014) do, so it costs a sort instead of the
    ``m * n`` comparisons of the original formulation. The interval is clipped to [0, 1].
    """
    positives, negatives = _split(labels, scores)
    m, n = positives.size, negatives.size
    combined = _midranks(np.concatenate([positives, negatives]))
    rank_pos, rank_neg = _midranks(positives), _midranks(negatives)
    auc = (combined[:m].sum() - m * (m + 1) / 2) / (m * n)
    v10 = (combined[:m] - rank_pos) / n  # per positive: share of negatives below it
    v01 = 1.0 - (combined[m:] - rank_neg) / m  # per negative: share of positives above it
    variance = (np.var(v10, ddof=1) if m > 1 else 0.0) / m + (
        np.var(v01, ddof=1) if n > 1 else 0.0
    ) / n
    z = NormalDist().inv_cdf(0.5 + level / 2)
    half = z * float(np.sqrt(variance))
    return Interval(float(auc), max(0.0, float(auc) - half), min(1.0, float(auc) + half))


def wilson_interval(successes: float, total: float, level: float = 0.95) -> Interval:
    """A proportion with the Wilson score interval, which stays sensible near 0 and 1.

    Counts are usually whole, but they may be fractional: a proportion estimated from
    weighted cases (QA review of a sample) is passed as ``p * n_eff`` successes of Kish's
    effective sample size ``n_eff``, the interval then being as wide as the weighting makes
    the estimate uncertain. With whole counts the result is the textbook interval.
    """
    if total <= 0:
        raise ValueError("a proportion needs at least one trial")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return Interval(p, max(0.0, float(centre - half)), min(1.0, float(centre + half)))


def operating_point(
    labels: ArrayLike, scores: ArrayLike, threshold: float, level: float = 0.95
) -> OperatingPoint:
    """Sensitivity and specificity of calling ``score >= threshold`` positive."""
    y = np.asarray(labels, dtype=bool).reshape(-1)
    called = np.asarray(scores, dtype=np.float64).reshape(-1) >= threshold
    tp, fn = int((called & y).sum()), int((~called & y).sum())
    tn, fp = int((~called & ~y).sum()), int((called & ~y).sum())
    return OperatingPoint(
        threshold=threshold,
        sensitivity=wilson_interval(tp, tp + fn, level),
        specificity=wilson_interval(tn, tn + fp, level),
        true_positives=tp,
        false_negatives=fn,
        true_negatives=tn,
        false_positives=fp,
    )


def threshold_youden(labels: ArrayLike, scores: ArrayLike) -> float:
    """The threshold of maximal Youden index (sensitivity + specificity - 1), placed midway.

    Among the cuts between consecutive distinct scores, the best one is taken and the
    threshold set halfway between the two scores it separates: a model whose scores crowd
    near 0 and 1 then gets a threshold with room on both sides, not one that sits on the
    last positive of the validation set.
    """
    positives, negatives = _split(labels, scores)
    values = np.unique(np.concatenate([positives, negatives]))
    cuts = (values[:-1] + values[1:]) / 2 if values.size > 1 else values
    best, best_j = float(cuts[0]), -np.inf
    for cut in cuts:
        j = (positives >= cut).mean() + (negatives < cut).mean() - 1.0
        if j > best_j:
            best, best_j = float(cut), j
    return best


def dice(prediction: ArrayLike, truth: ArrayLike) -> float:
    """Dice coefficient of two binary masks; 1.0 when both are empty (nothing to find)."""
    p = np.asarray(prediction, dtype=bool)
    t = np.asarray(truth, dtype=bool)
    if p.shape != t.shape:
        raise ValueError(f"mask shapes differ: {p.shape} and {t.shape}")
    total = int(p.sum()) + int(t.sum())
    if total == 0:
        return 1.0
    return 2.0 * int((p & t).sum()) / total


def summary(values: Sequence[float]) -> Interval:
    """Mean of per-case values with a normal-approximation 95% interval of the mean."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("no values to summarise")
    mean = float(array.mean())
    if array.size == 1:
        return Interval(mean, mean, mean)
    half = 1.96 * float(array.std(ddof=1)) / float(np.sqrt(array.size))
    return Interval(mean, mean - half, mean + half)


def study_level_report(
    labels: ArrayLike, scores: ArrayLike, threshold: float, level: float = 0.95
) -> dict[str, object]:
    """The study-level figures of a model card, JSON-ready, rounded to 4 decimals."""
    auc = auc_delong(labels, scores, level)
    point = operating_point(labels, scores, threshold, level)

    def interval(value: Interval) -> dict[str, float]:
        return {
            "value": round(value.value, 4),
            "low": round(value.low, 4),
            "high": round(value.high, 4),
        }

    y = np.asarray(labels, dtype=bool)
    return {
        "studies": int(y.size),
        "positives": int(y.sum()),
        "auc": interval(auc),
        "threshold": threshold,
        "sensitivity": interval(point.sensitivity),
        "specificity": interval(point.specificity),
        "confusion": {
            "tp": point.true_positives,
            "fn": point.false_negatives,
            "tn": point.true_negatives,
            "fp": point.false_positives,
        },
    }
