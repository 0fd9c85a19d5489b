"""The QA agreement statistics against values computed by hand from their definitions.

Wilson 95% intervals below are worked out with z = 1.959964 (z^2 = 3.841459):
centre = (p + z^2/2n) / (1 + z^2/n), half = z * sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pacs_ai.qa.stats import (
    SAMPLE_MODULUS,
    DriftPolicy,
    PairTally,
    ReviewedFinding,
    VersionStats,
    comparison,
    estimated_proportion,
    in_negative_sample,
    to_csv,
    version_stats,
)
from pacs_ai.registry.metrics import Interval, wilson_interval

SINCE = datetime(2026, 1, 1, tzinfo=UTC)
UNTIL = datetime(2026, 2, 1, tzinfo=UTC)
DAY = datetime(2026, 1, 10, 12, tzinfo=UTC)
APPROX = 1e-4


def finding(
    *,
    present: bool,
    decision: str | None = None,
    sampled: bool = False,
    created_at: datetime = DAY,
    version: str = "1.0",
    shadow: bool = False,
    model: str = "pe-net",
    verdicts: int = 0,
    agreed: int = 0,
) -> ReviewedFinding:
    """A finding of pipeline ``ctpa`` with a fresh id."""
    return ReviewedFinding(
        pipeline="ctpa",
        model_name=model,
        model_version=version,
        shadow=shadow,
        present=present,
        created_at=created_at,
        decision=decision,
        sampled=sampled,
        verdicts=verdicts,
        agreed=agreed,
    )


def many(count: int, **kwargs: object) -> list[ReviewedFinding]:
    return [finding(**kwargs) for _ in range(count)]  # type: ignore[arg-type]


def only(findings: list[ReviewedFinding], policy: DriftPolicy | None = None) -> VersionStats:
    (stats,) = version_stats(findings, since=SINCE, until=UNTIL, drift=policy or DriftPolicy())
    return stats


def assert_interval(actual: Interval | None, value: float, low: float, high: float) -> None:
    assert actual is not None
    assert (actual.value, actual.low, actual.high) == pytest.approx((value, low, high), abs=APPROX)


def test_wilson_interval_takes_fractional_counts() -> None:
    # 8/10: centre = (0.8 + 0.192073) / 1.384146 = 0.716740,
    # half = 1.959964 * sqrt(0.016 + 0.009604) / 1.384146 = 0.226578.
    assert_interval(wilson_interval(8.0, 10.0), 0.8, 0.490162, 0.943318)
    assert wilson_interval(8.0, 10.0) == wilson_interval(8, 10)


def test_fully_reviewed_period_gives_the_plain_proportions() -> None:
    """Every finding reviewed, every negative sampled: weights 1, textbook intervals."""
    stats = only(
        many(2, present=True, decision="accept")
        + many(1, present=True, decision="correct")
        + many(1, present=True, decision="reject")
        + many(4, present=False, decision="accept", sampled=True)
        + many(1, present=False, decision="reject", sampled=True)
    )
    assert (stats.findings, stats.positives, stats.negatives, stats.reviewed) == (9, 4, 5, 9)
    assert (stats.tp, stats.fp, stats.tn, stats.fn, stats.corrected) == (3, 1, 4, 1, 1)
    assert stats.positive_rate == pytest.approx(4 / 9)
    # 3/4: centre = (0.75 + 0.480182) / 1.960365 = 0.627527, half = 0.326885.
    assert_interval(stats.ppv, 0.75, 0.300642, 0.954413)
    assert_interval(stats.sensitivity, 0.75, 0.300642, 0.954413)
    # 4/5: centre = (0.8 + 0.384146) / 1.768292 = 0.669655, half = 0.294121.
    assert_interval(stats.specificity, 0.8, 0.375535, 0.963776)
    assert stats.sensitivity == wilson_interval(3, 4)
    assert stats.specificity == wilson_interval(4, 5)


def test_sampled_review_is_weighted_to_all_findings() -> None:
    """40 positives (10 reviewed: 8 TP, 2 FP), 160 negatives (16 sampled reviewed: 15 TN, 1 FN).

    w_pos = 40 / 10 = 4, w_neg = 160 / 16 = 10.
    Sensitivity: TP*w_pos = 32, FN*w_neg = 10, p = 32/42 = 0.761905;
      n_eff = (8*4 + 1*10)^2 / (8*16 + 1*100) = 1764 / 228 = 7.736842;
      centre = (0.761905 + 0.248259) / 1.496518 = 0.675010, half = 0.260265.
    Specificity: TN*w_neg = 150, FP*w_pos = 8, p = 150/158 = 0.949367;
      n_eff = (15*10 + 2*4)^2 / (15*100 + 2*16) = 24964 / 1532 = 16.295039;
      centre = (0.949367 + 0.117872) / 1.235744 = 0.863641, half = 0.128527.
    The plain (unweighted) sensitivity would be 8/9 = 0.889: the sample of negatives hides
    9 of every 10 missed findings.
    """
    findings = (
        many(6, present=True, decision="accept")
        + many(2, present=True, decision="correct")
        + many(2, present=True, decision="reject")
        + many(30, present=True)
        + many(15, present=False, decision="accept", sampled=True)
        + many(1, present=False, decision="reject", sampled=True)
        + many(141, present=False)
        # Reviewed because a reader disagreed, not at random: reviewed, but no TN or FN.
        + many(2, present=False, decision="accept")
        + many(1, present=False, decision="reject")
    )
    stats = only(findings)
    assert (stats.findings, stats.positives, stats.negatives) == (200, 40, 160)
    assert stats.reviewed == 10 + 16 + 3
    assert (stats.tp, stats.fp, stats.tn, stats.fn, stats.corrected) == (8, 2, 15, 1, 2)
    assert_interval(stats.ppv, 0.8, 0.490162, 0.943318)
    assert_interval(stats.sensitivity, 0.761905, 0.414745, 0.935275)
    assert_interval(stats.specificity, 0.949367, 0.735114, 0.992168)
    assert stats.sensitivity == estimated_proportion(8, 4.0, 1, 10.0)
    assert stats.specificity == estimated_proportion(15, 10.0, 2, 4.0)


def test_sampled_negatives_still_unreviewed_do_not_count() -> None:
    stats = only(
        many(2, present=True, decision="accept")
        + many(1, present=False, decision="accept", sampled=True)
        + many(3, present=False, sampled=True)
    )
    assert (stats.reviewed, stats.tn, stats.fn) == (3, 1, 0)
    # Positives all reviewed (w_pos = 1), negatives 4 for 1 reviewed (w_neg = 4): sensitivity
    # 2*1 / (2*1 + 0) = 1 at n_eff = 2^2 / 2 = 2, the plain 2/2 interval.
    assert stats.sensitivity == wilson_interval(2, 2)
    # Specificity 1*4 / (1*4 + 0) = 1 at n_eff = 16 / 16 = 1: the 1/1 interval,
    # centre = (1 + 1.920730) / 4.841459 = 0.603275, half = 0.396725.
    assert_interval(stats.specificity, 1.0, 0.206549, 1.0)


def test_unreviewed_findings_count_but_estimate_nothing() -> None:
    stats = only(many(3, present=True) + many(5, present=False))
    assert (stats.findings, stats.reviewed, stats.tp, stats.fp, stats.tn, stats.fn) == (
        8,
        0,
        0,
        0,
        0,
        0,
    )
    assert stats.ppv is None
    assert stats.sensitivity is None and stats.specificity is None


def test_no_estimate_while_one_call_has_no_reviewed_case() -> None:
    """Reviewed positives but no sampled negative reviewed: false negatives are unknown."""
    stats = only(many(4, present=True, decision="accept") + many(6, present=False, sampled=True))
    assert stats.ppv == wilson_interval(4, 4)
    assert stats.sensitivity is None and stats.specificity is None


def test_latest_decision_is_the_one_that_counts() -> None:
    """A positive first accepted then rejected (superseded) arrives as rejected: a FP."""
    stats = only(
        [
            finding(present=True, decision="reject"),
            finding(present=True, decision="correct"),
            finding(present=True, decision=None),
        ]
    )
    assert (stats.tp, stats.fp, stats.corrected, stats.reviewed) == (1, 1, 1, 2)
    # 1/2: centre = 0.5, half = 1.959964 * sqrt(0.125 + 0.240091) / 1.960730 = 0.405469.
    assert_interval(stats.ppv, 0.5, 0.094531, 0.905469)


def test_only_findings_of_the_period_count() -> None:
    findings = [
        finding(present=True, created_at=SINCE - timedelta(microseconds=1)),
        finding(present=True, created_at=SINCE),
        finding(present=False, created_at=UNTIL - timedelta(microseconds=1)),
        finding(present=True, created_at=UNTIL),
    ]
    stats = only(findings)
    assert (stats.findings, stats.positives, stats.negatives) == (2, 1, 1)
    empty = version_stats(
        findings,
        since=UNTIL + timedelta(days=1),
        until=UNTIL + timedelta(days=2),
        drift=DriftPolicy(),
    )
    assert empty == []


def test_versions_are_grouped_and_sorted() -> None:
    findings = [
        finding(present=True, version="2.0", shadow=True),
        finding(present=False, version="1.0"),
        finding(present=True, version="2.0"),
        finding(present=True, version="1.0"),
        finding(present=True, version="1.0", model="aa-net"),
    ]
    keys = [
        (s.model_name, s.model_version, s.shadow, s.findings)
        for s in version_stats(findings, since=SINCE, until=UNTIL, drift=DriftPolicy())
    ]
    assert keys == [
        ("aa-net", "1.0", False, 1),
        ("pe-net", "1.0", False, 2),
        ("pe-net", "2.0", False, 1),
        ("pe-net", "2.0", True, 1),
    ]


def test_reader_agreement() -> None:
    stats = only(
        [
            finding(present=True, verdicts=3, agreed=3),
            finding(present=False, verdicts=2, agreed=1),
            finding(present=False),
        ]
    )
    assert (stats.reader_agreement.verdicts, stats.reader_agreement.agreed) == (5, 4)
    # 4/5 as above.
    assert_interval(stats.reader_agreement.rate, 0.8, 0.375535, 0.963776)
    assert only([finding(present=True)]).reader_agreement.rate is None


def test_daily_buckets_are_utc_days_in_order() -> None:
    cet = timezone(timedelta(hours=1))
    stats = only(
        [
            finding(present=True, created_at=datetime(2026, 1, 12, 8, tzinfo=UTC)),
            finding(present=True, created_at=datetime(2026, 1, 10, 23, 30, tzinfo=UTC)),
            # 00:30 in UTC+1 is 23:30 UTC the day before.
            finding(present=False, created_at=datetime(2026, 1, 11, 0, 30, tzinfo=cet)),
            finding(present=False, created_at=datetime(2026, 1, 12, 9, tzinfo=UTC)),
            finding(present=False, created_at=datetime(2026, 1, 12, 10, tzinfo=UTC)),
            finding(present=False, created_at=datetime(2026, 1, 12, 11, tzinfo=UTC)),
        ]
    )
    assert [(d.day, d.findings, d.positives) for d in stats.daily] == [
        (date(2026, 1, 10), 2, 1),
        (date(2026, 1, 12), 4, 1),
    ]
    assert [d.rate for d in stats.daily] == [0.5, 0.25]


def drift_findings() -> list[ReviewedFinding]:
    """Baseline: 20 findings, 2 positive (0.10); recent 7 days: 20 findings, 8 positive (0.40)."""
    start = UNTIL - timedelta(days=7)
    old = start - timedelta(days=3)
    return (
        many(2, present=True, created_at=old)
        + many(17, present=False, created_at=old)
        + many(1, present=False, created_at=start - timedelta(microseconds=1))
        + many(7, present=True, created_at=start + timedelta(days=1))
        + many(1, present=True, created_at=start)
        + many(12, present=False, created_at=start + timedelta(days=5))
    )


def test_drift_alert_when_both_sides_are_large_enough() -> None:
    drift = only(drift_findings()).drift
    assert (drift.baseline_findings, drift.recent_findings) == (20, 20)
    assert drift.baseline_rate == pytest.approx(0.10)
    assert drift.recent_rate == pytest.approx(0.40)
    assert drift.difference == pytest.approx(0.30)
    assert drift.threshold == 0.10
    assert drift.alert


def test_no_drift_alert_below_min_findings_or_threshold() -> None:
    assert not only(drift_findings(), DriftPolicy(min_findings=21)).drift.alert
    assert not only(drift_findings(), DriftPolicy(threshold=0.35)).drift.alert
    # A 3-day window leaves 12 recent findings (0 positive) and 28 in the baseline.
    short = only(drift_findings(), DriftPolicy(window_days=3, min_findings=10)).drift
    assert (short.baseline_findings, short.recent_findings) == (28, 12)
    assert short.recent_rate == 0.0
    assert short.difference == pytest.approx(-10 / 28)
    assert short.alert  # a fall counts as much as a rise


def test_drift_without_a_baseline() -> None:
    drift = only(many(30, present=True, created_at=UNTIL - timedelta(days=1))).drift
    assert drift.baseline_rate is None and drift.difference is None
    assert drift.recent_rate == 1.0 and not drift.alert


def test_a_comparison_from_paired_calls() -> None:
    tally = PairTally(
        pipeline="ctpa",
        model_name="pe-net",
        active_version="1.0",
        shadow_version="2.0",
        studies=5,
        both_positive=1,
        both_negative=2,
        shadow_only=1,
        active_only=1,
        abs_probability_difference=0.9,
    )
    result = comparison(tally)
    assert (result.studies, result.both_positive, result.shadow_only) == (5, 1, 1)
    # 3/5: centre = (0.6 + 0.384146) / 1.768292 = 0.556552, half = 0.325827.
    assert_interval(result.agreement, 0.6, 0.230724, 0.882379)
    assert result.mean_abs_probability_difference == pytest.approx(0.18)
    empty = comparison(PairTally(**{**tally.__dict__, "studies": 0, "both_positive": 0}))
    assert empty.agreement is None and empty.mean_abs_probability_difference is None


def test_csv_has_a_header_and_a_row_per_version() -> None:
    stats = version_stats(
        many(2, present=True, decision="accept")
        + many(2, present=False, decision="accept", sampled=True)
        + [finding(present=True, model='=HYPERLINK("http://x")', version="-1+1")],
        since=SINCE,
        until=UNTIL,
        drift=DriftPolicy(),
    )
    rows = list(csv.reader(io.StringIO(to_csv(stats))))
    assert rows[0] == [
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
    ]
    assert len(rows) == 3
    injected = dict(zip(rows[0], rows[1], strict=True))
    assert injected["model_name"] == '\'=HYPERLINK("http://x")'
    assert injected["model_version"] == "'-1+1"
    assert injected["ppv"] == injected["sensitivity"] == injected["reader_agreement"] == ""
    plain = dict(zip(rows[0], rows[2], strict=True))
    assert plain["model_name"] == "pe-net" and plain["shadow"] == "false"
    assert plain["findings"] == "4" and plain["positive_rate"] == "0.500000"
    # PPV 2/2: centre = (1 + 0.960365) / 2.920729 = 0.671190, half = 1.959964 * sqrt(0.240091)
    # / 2.920729 = 0.328810 -> low 0.342380, high 1 (clipped).
    assert (plain["ppv"], plain["ppv_low"], plain["ppv_high"]) == (
        "1.000000",
        "0.342380",
        "1.000000",
    )
    assert plain["drift_baseline_rate"] == "0.500000" and plain["drift_recent_rate"] == ""
    assert plain["drift_alert"] == "false"


@pytest.mark.parametrize(("rate", "expected"), [(0.0, 0), (0.1, 1000), (0.25, 2500), (1.0, 10000)])
def test_negative_sample_rate_is_exact_over_a_block(rate: float, expected: int) -> None:
    drawn = [i for i in range(1, SAMPLE_MODULUS + 1) if in_negative_sample(i, rate)]
    assert len(drawn) == expected


def test_negative_sample_is_deterministic_and_scattered() -> None:
    # 7 * 5761 = 40327 -> 327 < 1000; 1 * 5761 -> 5761 >= 1000.
    assert [i for i in range(1, 40) if in_negative_sample(i, 0.1)] == [7, 14, 21, 33]
    assert all(
        in_negative_sample(i, 0.1) == in_negative_sample(i + SAMPLE_MODULUS, 0.1)
        for i in range(1, 2000)
    )
    with pytest.raises(ValueError, match="between 0 and 1"):
        in_negative_sample(1, 1.5)


def test_estimated_proportion_edges() -> None:
    assert estimated_proportion(0, 3.0, 0, 1.0) is None
    assert estimated_proportion(0, 2.0, 0, 2.0) is None
    with pytest.raises(ValueError):
        estimated_proportion(1, -1.0, 1, 1.0)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 500),
    st.integers(0, 500),
    st.floats(0.01, 1000, allow_nan=False, allow_infinity=False),
)
def test_equal_weights_give_the_plain_wilson_interval(a: int, b: int, weight: float) -> None:
    expected = wilson_interval(a, a + b) if a + b else None
    assert estimated_proportion(a, weight, b, weight) == expected
    assert estimated_proportion(a, 1.0, b, 1.0) == expected


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 300),
    st.integers(0, 300),
    st.floats(1, 100, allow_nan=False),
    st.floats(1, 100, allow_nan=False),
)
def test_weighted_estimate_is_a_proportion_within_its_interval(
    a: int, b: int, wa: float, wb: float
) -> None:
    result = estimated_proportion(a, wa, b, wb)
    if a + b == 0:
        assert result is None
        return
    assert result is not None
    assert result.value == pytest.approx(a * wa / (a * wa + b * wb))
    assert 0.0 <= result.low <= result.value + 1e-12 and result.value - 1e-12 <= result.high <= 1.0


def tally(findings: list[ReviewedFinding], recent_from: datetime) -> list[ReviewedFinding]:
    """What the database sends for a period: alike findings as one row with a count."""
    groups: dict[tuple[object, ...], list[ReviewedFinding]] = {}
    for f in findings:
        key = (
            f.pipeline,
            f.model_name,
            f.model_version,
            f.shadow,
            f.present,
            f.decision,
            f.sampled,
            f.created_at.date(),
            f.created_at >= recent_from,
        )
        groups.setdefault(key, []).append(f)
    return [
        ReviewedFinding(
            pipeline=group[0].pipeline,
            model_name=group[0].model_name,
            model_version=group[0].model_version,
            shadow=group[0].shadow,
            present=group[0].present,
            created_at=max(f.created_at for f in group),
            decision=group[0].decision,
            sampled=group[0].sampled,
            verdicts=sum(f.verdicts for f in group),
            agreed=sum(f.agreed for f in group),
            count=len(group),
        )
        for group in groups.values()
    ]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.booleans(),
            st.sampled_from([None, "accept", "reject", "correct"]),
            st.booleans(),
            st.integers(min_value=0, max_value=30 * 24 - 1),
            st.sampled_from(["1.0", "2.0"]),
            st.integers(min_value=0, max_value=2),
        ),
        min_size=1,
        max_size=120,
    )
)
def test_tallies_give_the_statistics_of_single_findings(
    rows: list[tuple[bool, str | None, bool, int, str, int]],
) -> None:
    findings = [
        finding(
            present=present,
            decision=decision,
            sampled=sampled,
            created_at=SINCE + timedelta(hours=hour),
            version=version,
            verdicts=verdicts,
            agreed=min(verdicts, 1),
        )
        for present, decision, sampled, hour, version, verdicts in rows
    ]
    policy = DriftPolicy(threshold=0.1, window_days=7.5, min_findings=3)
    recent_from = UNTIL - timedelta(days=policy.window_days)
    one_by_one = version_stats(findings, since=SINCE, until=UNTIL, drift=policy)
    tallied = version_stats(tally(findings, recent_from), since=SINCE, until=UNTIL, drift=policy)
    assert tallied == one_by_one
