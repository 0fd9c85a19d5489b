"""Agreement statistics of AI findings against QA reviews: pure, no database, no I/O.

The database layer tallies the current findings of a period (:class:`ReviewedFinding`: the
latest review, the readers' verdicts, whether in the random negative sample, how many alike)
and pairs shadow with active calls (:class:`PairTally`); everything the statistics page, its
CSV export and the tests show is computed here from those, so the numbers have one definition
whatever asks for them.

Why the estimates are weighted: QA reviews every positive finding it can but only a random
sample of the negatives (:func:`in_negative_sample`), and possibly not all of either. Counting
the reviewed cases as they are would measure sensitivity on a population that has far too few
negatives. Each reviewed case therefore stands for the cases of its call that were not reviewed:
a reviewed positive has weight ``positives / (tp + fp)``, a sampled reviewed negative
``negatives / (tn + fn)``, the inverse of the share of its stratum that was reviewed, as in the
Horvitz-Thompson estimator [1]_. The interval of such an estimate is the Wilson interval [2]_
at Kish's effective sample size [3]_, ``n_eff = (sum w)^2 / sum w^2``, which is the number of
cases an unweighted sample would need for the same precision. With every finding reviewed the
weights are 1 and the figures are the plain proportions and intervals.

Negatives reviewed for other reasons (a reader disagreed, a shadow run differs) are not a
random sample, so they count in ``reviewed`` but not in ``tn`` and ``fn``.

References
----------
.. [1] D. G. Horvitz and D. J. Thompson, "A generalization of sampling without replacement
   from a finite universe", J. Am. Stat. Assoc. 47:663-685, 1952.
.. [2] E. B. Wilson, "Probable inference, the law of succession, and statistical inference",
   J. Am. Stat. Assoc. 22:209-212, 1927.
.. [3] L. Kish, Survey Sampling, Wiley, 1965, section 11.7.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from pacs_ai.registry.metrics import Interval, wilson_interval

SAMPLE_MODULUS = 10_000
"""Block size of the negative sample: the rate is exact over every block of this many ids."""

SAMPLE_MULTIPLIER = 5_761
"""Coprime to :data:`SAMPLE_MODULUS`, so ``id * multiplier mod modulus`` permutes each block."""

_TRUE_CALL = frozenset({"accept", "correct"})  # a reviewed positive that was really present
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

CSV_COLUMNS = (
    "pipeline",
    "model_name",
    "model_version",
    "shadow",
    "findings",
    "positives",
    "negatives",
    "positive_rate",
    "reviewed",
    "tp",
    "fp",
    "tn",
    "fn",
    "corrected",
    "ppv",
    "ppv_low",
    "ppv_high",
    "sensitivity",
    "sensitivity_low",
    "sensitivity_high",
    "specificity",
    "specificity_low",
    "specificity_high",
    "reader_verdicts",
    "reader_agreed",
    "reader_agreement",
    "drift_baseline_rate",
    "drift_recent_rate",
    "drift_alert",
)
"""Columns of :func:`to_csv`, one row per model version."""


@dataclass(frozen=True)
class ReviewedFinding:
    """A current AI finding (or a tally of alike ones) with its latest review and verdicts.

    This is the whole input of the version statistics: the database layer resolves
    superseded reviews (only the latest counts) and the sample membership before building it.

    Attributes
    ----------
    present
        The model's call.
    created_at
        When the model made the finding, timezone-aware.
    decision
        The latest review's decision (``"accept"``, ``"reject"`` or ``"correct"``), None when
        the finding is unreviewed.
    sampled
        Whether the finding is in the random negative sample (:func:`in_negative_sample`).
    verdicts, agreed
        Radiologists' verdicts on the finding at read time, and how many of them agreed.
    count
        How many alike findings this row stands for (same version, call, latest decision,
        sample membership and day): the database tallies a long period instead of sending
        every row. ``verdicts`` and ``agreed`` are then the tally's sums.
    """

    pipeline: str
    model_name: str
    model_version: str
    shadow: bool
    present: bool
    created_at: datetime
    decision: str | None
    sampled: bool
    verdicts: int = 0
    agreed: int = 0
    count: int = 1


@dataclass(frozen=True)
class DriftPolicy:
    """When a change of positive rate raises an alert (``PACS_AI_QA_DRIFT_*`` settings).

    Attributes
    ----------
    threshold
        The absolute difference of positive rates, recent against baseline, above which the
        rate has drifted.
    window_days
        How far back from the end of the period the recent window reaches.
    min_findings
        Findings each side needs before a difference is trusted: a few findings move a rate
        by more than any threshold.
    """

    threshold: float = 0.10
    window_days: float = 7.0
    min_findings: int = 20


@dataclass(frozen=True)
class DayRate:
    """The positive rate of one UTC day."""

    day: date
    findings: int
    positives: int
    rate: float


@dataclass(frozen=True)
class Drift:
    """The recent window's positive rate against the rest of the period (the baseline)."""

    baseline_rate: float | None
    recent_rate: float | None
    baseline_findings: int
    recent_findings: int
    difference: float | None
    threshold: float
    alert: bool


@dataclass(frozen=True)
class ReaderAgreement:
    """Radiologists' verdicts at read time on a version's findings."""

    verdicts: int
    agreed: int
    rate: Interval | None


@dataclass(frozen=True)
class VersionStats:
    """The figures of one (pipeline, model version, shadow or not) over a period."""

    pipeline: str
    model_name: str
    model_version: str
    shadow: bool
    findings: int
    positives: int
    negatives: int
    positive_rate: float
    reviewed: int
    tp: int
    fp: int
    tn: int
    fn: int
    corrected: int
    ppv: Interval | None
    sensitivity: Interval | None
    specificity: Interval | None
    reader_agreement: ReaderAgreement
    daily: list[DayRate]
    drift: Drift


@dataclass(frozen=True)
class Comparison:
    """A shadow version's calls against the active version's on the same studies.

    ``studies`` counts the paired calls: one per study and finding code.
    """

    pipeline: str
    model_name: str
    active_version: str
    shadow_version: str
    studies: int
    both_positive: int
    both_negative: int
    shadow_only: int
    active_only: int
    agreement: Interval | None
    mean_abs_probability_difference: float | None


def in_negative_sample(finding_id: int, rate: float) -> bool:
    """Whether a finding is in the deterministic random sample of negatives.

    ``(finding_id * 5761) mod 10000 < round(rate * 10000)``: multiplying by a number coprime
    to the modulus permutes each block of 10,000 ids, so the rate is exact over every block,
    ids close together are scattered, and the same finding is always in or out. The SQL side
    of the queue uses the same constants, so queue and statistics agree on the sample.

    Raises
    ------
    ValueError
        If ``rate`` is outside [0, 1].
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"a sample rate is between 0 and 1, not {rate}")
    cut = round(rate * SAMPLE_MODULUS)
    return (finding_id * SAMPLE_MULTIPLIER) % SAMPLE_MODULUS < cut


def estimated_proportion(
    hits_a: int, weight_a: float, hits_b: int, weight_b: float, level: float = 0.95
) -> Interval | None:
    """The weighted share of ``a`` among ``a`` and ``b`` cases, with its Wilson interval.

    ``p = hits_a * w_a / (hits_a * w_a + hits_b * w_b)``, the interval taken at Kish's
    effective sample size ``n_eff = (sum w)^2 / sum w^2 = (hits_a * w_a + hits_b * w_b)^2 /
    (hits_a * w_a^2 + hits_b * w_b^2)``. Equal weights cancel, and then the unweighted
    :func:`~pacs_ai.registry.metrics.wilson_interval` is returned as it is, so a fully reviewed
    period gives the plain interval exactly, not up to rounding.

    Returns
    -------
    Interval or None
        None when the weighted denominator is 0 (nothing to estimate from).

    Raises
    ------
    ValueError
        If a count or a weight is negative.
    """
    if min(hits_a, hits_b) < 0 or min(weight_a, weight_b) < 0:
        raise ValueError("counts and weights cannot be negative")
    if weight_a == weight_b:
        total = hits_a + hits_b
        return wilson_interval(hits_a, total, level) if total > 0 and weight_a > 0 else None
    weighted_a, weighted_b = hits_a * weight_a, hits_b * weight_b
    denominator = weighted_a + weighted_b
    if denominator <= 0:
        return None
    p = weighted_a / denominator
    n_eff = denominator * denominator / (hits_a * weight_a**2 + hits_b * weight_b**2)
    return wilson_interval(p * n_eff, n_eff, level)


def version_stats(
    findings: Sequence[ReviewedFinding], *, since: datetime, until: datetime, drift: DriftPolicy
) -> list[VersionStats]:
    """The statistics of every model version with findings in ``[since, until)``.

    Parameters
    ----------
    findings
        Current findings with their latest review; those outside the period are ignored.
    since, until
        The period, timezone-aware; ``until`` also ends the drift's recent window.
    drift
        When the recent positive rate counts as drifted.

    Returns
    -------
    list of VersionStats
        One per (pipeline, model_name, model_version, shadow), sorted by those keys.
    """
    _check_period(since, until)
    groups: defaultdict[tuple[str, str, str, bool], list[ReviewedFinding]] = defaultdict(list)
    for finding in findings:
        if since <= finding.created_at < until:
            key = (finding.pipeline, finding.model_name, finding.model_version, finding.shadow)
            groups[key].append(finding)
    return [
        _one_version(key, group, until=until, policy=drift) for key, group in sorted(groups.items())
    ]


@dataclass(frozen=True)
class PairTally:
    """A shadow version's calls against the active version's on the same studies, as counted
    by the database: per study and finding code, the newest call of each side."""

    pipeline: str
    model_name: str
    active_version: str
    shadow_version: str
    studies: int
    both_positive: int
    both_negative: int
    shadow_only: int
    active_only: int
    abs_probability_difference: float
    """Sum over the studies of |shadow probability - active probability|."""


def comparison(tally: PairTally) -> Comparison:
    """The comparison a tally of paired calls gives: agreement with its Wilson interval."""
    agreed = tally.both_positive + tally.both_negative
    return Comparison(
        pipeline=tally.pipeline,
        model_name=tally.model_name,
        active_version=tally.active_version,
        shadow_version=tally.shadow_version,
        studies=tally.studies,
        both_positive=tally.both_positive,
        both_negative=tally.both_negative,
        shadow_only=tally.shadow_only,
        active_only=tally.active_only,
        agreement=wilson_interval(agreed, tally.studies) if tally.studies else None,
        mean_abs_probability_difference=(
            tally.abs_probability_difference / tally.studies if tally.studies else None
        ),
    )


def to_csv(stats: Sequence[VersionStats]) -> str:
    """The statistics as CSV, one row per version (columns :data:`CSV_COLUMNS`).

    Empty cells stand for None, floats have 6 decimals, booleans are ``true``/``false``. A
    text cell starting with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage return) gets a
    leading ``'`` so that a spreadsheet does not run a model name as a formula (OWASP, CSV
    injection).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in stats:
        writer.writerow(
            [
                _cell(value)
                for value in (
                    row.pipeline,
                    row.model_name,
                    row.model_version,
                    row.shadow,
                    row.findings,
                    row.positives,
                    row.negatives,
                    row.positive_rate,
                    row.reviewed,
                    row.tp,
                    row.fp,
                    row.tn,
                    row.fn,
                    row.corrected,
                    *_interval_cells(row.ppv),
                    *_interval_cells(row.sensitivity),
                    *_interval_cells(row.specificity),
                    row.reader_agreement.verdicts,
                    row.reader_agreement.agreed,
                    row.reader_agreement.rate.value if row.reader_agreement.rate else None,
                    row.drift.baseline_rate,
                    row.drift.recent_rate,
                    row.drift.alert,
                )
            ]
        )
    return buffer.getvalue()


def _check_period(since: datetime, until: datetime) -> None:
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("the period needs timezone-aware times")


def _one_version(
    key: tuple[str, str, str, bool],
    group: list[ReviewedFinding],
    *,
    until: datetime,
    policy: DriftPolicy,
) -> VersionStats:
    pipeline, model_name, model_version, shadow = key
    positives = [f for f in group if f.present]
    sampled = [f for f in group if not f.present and f.sampled]
    findings = _count(group)
    n_pos = _count(positives)
    n_neg = findings - n_pos
    tp = _count(f for f in positives if f.decision in _TRUE_CALL)
    fp = _count(f for f in positives if f.decision == "reject")
    tn = _count(f for f in sampled if f.decision == "accept")
    fn = _count(f for f in sampled if f.decision == "reject")
    sensitivity, specificity = _estimates(
        tp=tp, fp=fp, tn=tn, fn=fn, positives=n_pos, negatives=n_neg
    )
    verdicts = sum(f.verdicts for f in group)
    agreed = sum(f.agreed for f in group)
    return VersionStats(
        pipeline=pipeline,
        model_name=model_name,
        model_version=model_version,
        shadow=shadow,
        findings=findings,
        positives=n_pos,
        negatives=n_neg,
        positive_rate=n_pos / findings,
        reviewed=_count(f for f in group if f.decision is not None),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        corrected=_count(f for f in positives if f.decision == "correct"),
        ppv=wilson_interval(tp, tp + fp) if tp + fp else None,
        sensitivity=sensitivity,
        specificity=specificity,
        reader_agreement=ReaderAgreement(
            verdicts=verdicts,
            agreed=agreed,
            rate=wilson_interval(agreed, verdicts) if verdicts else None,
        ),
        daily=_daily(group),
        drift=_drift(group, until=until, policy=policy),
    )


def _estimates(
    *, tp: int, fp: int, tn: int, fn: int, positives: int, negatives: int
) -> tuple[Interval | None, Interval | None]:
    """Estimated sensitivity and specificity of all the period's findings.

    Both need every call that occurred to be represented by reviewed cases: with positives
    but none reviewed, the true positives (sensitivity's numerator) and false positives
    (specificity's denominator) are unknown, and likewise for negatives. Estimating anyway
    would report a sensitivity of 1 merely because no negative was looked at.
    """
    if (positives and not tp + fp) or (negatives and not tn + fn):
        return None, None
    # A stratum without reviewed cases is empty here; its weight multiplies nothing.
    w_pos = positives / (tp + fp) if tp + fp else 1.0
    w_neg = negatives / (tn + fn) if tn + fn else 1.0
    return (
        estimated_proportion(tp, w_pos, fn, w_neg),
        estimated_proportion(tn, w_neg, fp, w_pos),
    )


def _count(findings: Iterable[ReviewedFinding]) -> int:
    """How many findings these rows stand for."""
    return sum(f.count for f in findings)


def _rate(findings: list[ReviewedFinding]) -> float | None:
    total = _count(findings)
    return _count(f for f in findings if f.present) / total if total else None


def _daily(group: list[ReviewedFinding]) -> list[DayRate]:
    counts: defaultdict[date, list[int]] = defaultdict(lambda: [0, 0])
    for finding in group:
        count = counts[finding.created_at.astimezone(UTC).date()]
        count[0] += finding.count
        count[1] += finding.count if finding.present else 0
    return [
        DayRate(day=day, findings=n, positives=pos, rate=pos / n)
        for day, (n, pos) in sorted(counts.items())
    ]


def _drift(group: list[ReviewedFinding], *, until: datetime, policy: DriftPolicy) -> Drift:
    start = until - timedelta(days=policy.window_days)
    recent = [f for f in group if f.created_at >= start]
    baseline = [f for f in group if f.created_at < start]
    recent_rate, baseline_rate = _rate(recent), _rate(baseline)
    difference = (
        recent_rate - baseline_rate
        if recent_rate is not None and baseline_rate is not None
        else None
    )
    recent_count, baseline_count = _count(recent), _count(baseline)
    enough = min(recent_count, baseline_count) >= policy.min_findings
    return Drift(
        baseline_rate=baseline_rate,
        recent_rate=recent_rate,
        baseline_findings=baseline_count,
        recent_findings=recent_count,
        difference=difference,
        threshold=policy.threshold,
        alert=enough and difference is not None and abs(difference) > policy.threshold,
    )


def _interval_cells(interval: Interval | None) -> tuple[float | None, ...]:
    if interval is None:
        return (None, None, None)
    return (interval.value, interval.low, interval.high)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text
