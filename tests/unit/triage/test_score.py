"""The priority model: each part, the category and SLA, explanations, ageing and the order."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pacs_ai.config import Settings
from pacs_ai.pipeline.definition import Severity
from pacs_ai.pipeline.schema import FindingRow
from pacs_ai.triage.score import (
    AiFinding,
    Category,
    OrderPriority,
    PatientSetting,
    StudyFacts,
    TriagePolicy,
    findings_from_records,
    rank,
    score,
    sort_key,
    waiting_pressure,
)

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
POLICY = TriagePolicy.from_settings(Settings())


def ich(probability: float = 0.93, **changes: object) -> AiFinding:
    finding = AiFinding(
        code="SCT:1386000",
        label="ICH",
        severity=Severity.CRITICAL,
        probability=probability,
        present=probability >= 0.5,
    )
    return replace(finding, **changes)  # type: ignore[arg-type]


def study(uid: str = "1.2.3", *, minutes_ago: float = 0.0, **changes: object) -> StudyFacts:
    facts = StudyFacts(study_uid=uid, arrived_at=T0 - timedelta(minutes=minutes_ago))
    return replace(facts, **changes)  # type: ignore[arg-type]


def at(facts: StudyFacts, policy: TriagePolicy = POLICY, now: datetime = T0) -> float:
    return score(facts, now=now, policy=policy).total


def test_ai_part_is_severity_weight_times_probability() -> None:
    result = score(study(findings=(ich(0.93),)), now=T0, policy=POLICY)
    weight = POLICY.severity_weights[Severity.CRITICAL]
    assert result.ai == pytest.approx(POLICY.weight_ai * weight * 0.93)
    assert result.total == pytest.approx(result.ai + result.clinical + result.waiting)
    by_severity = [
        at(study(findings=(ich(0.8, severity=severity),)))
        for severity in (Severity.CRITICAL, Severity.URGENT, Severity.ROUTINE)
    ]
    assert by_severity == sorted(by_severity, reverse=True)
    assert by_severity[0] > by_severity[1] > by_severity[2] > at(study())


def test_strongest_present_finding_counts_and_comes_first() -> None:
    effusion = AiFinding("SCT:60046008", "effusion", Severity.URGENT, 0.99, present=True)
    result = score(study(findings=(effusion, ich(0.7))), now=T0, policy=POLICY)
    assert [f.label for f in result.findings] == ["ICH", "effusion"]
    assert result.ai == pytest.approx(POLICY.weight_ai * 0.7)
    assert result.category is Category.CRITICAL


@pytest.mark.parametrize(
    "ignored",
    [
        ich(0.97, shadow=True),  # a shadow model is evaluated, not trusted
        ich(0.42),  # below the pipeline's threshold: not present
        ich(0.97, present=False),  # the pipeline said absent
        ich(0.97, severity=None),  # no triage mapping in the pipeline
    ],
)
def test_findings_that_do_not_count(ignored: AiFinding) -> None:
    result = score(study(findings=(ignored,)), now=T0, policy=POLICY)
    plain = score(study(), now=T0, policy=POLICY)
    assert result.ai == 0.0 and result.findings == ()
    assert result.category is Category.ROUTINE
    assert result.total == plain.total
    assert result.reasons == plain.reasons


def test_clinical_part_orders_priorities_and_settings() -> None:
    orders = [
        at(study(order_priority=priority))
        for priority in (
            OrderPriority.STAT,
            OrderPriority.HIGH,
            OrderPriority.MEDIUM,
            OrderPriority.ROUTINE,
            OrderPriority.LOW,
        )
    ]
    assert orders == sorted(orders, reverse=True) and len(set(orders)) == len(orders)
    settings = [
        at(study(patient_setting=setting))
        for setting in (PatientSetting.EMERGENCY, PatientSetting.INPATIENT)
    ]
    assert settings[0] > settings[1] > at(study())
    both = score(
        study(order_priority=OrderPriority.HIGH, patient_setting=PatientSetting.INPATIENT),
        now=T0,
        policy=POLICY,
    )
    expected = POLICY.order_weights[OrderPriority.HIGH]
    expected += POLICY.setting_weights[PatientSetting.INPATIENT]
    assert both.clinical == pytest.approx(POLICY.weight_clinical * expected)


@pytest.mark.parametrize(
    ("changes", "category"),
    [
        ({"findings": (ich(),), "order_priority": OrderPriority.LOW}, Category.CRITICAL),
        ({"findings": (ich(),), "order_priority": OrderPriority.STAT}, Category.CRITICAL),
        ({"order_priority": OrderPriority.STAT}, Category.STAT),
        ({"patient_setting": PatientSetting.EMERGENCY}, Category.STAT),
        ({"order_priority": OrderPriority.HIGH}, Category.URGENT),
        ({"findings": (ich(0.8, severity=Severity.URGENT),)}, Category.URGENT),
        ({"findings": (ich(0.8, severity=Severity.ROUTINE),)}, Category.ROUTINE),
        ({"order_priority": OrderPriority.MEDIUM}, Category.ROUTINE),
        ({"patient_setting": PatientSetting.INPATIENT}, Category.ROUTINE),
        ({}, Category.ROUTINE),
    ],
)
def test_category_is_the_most_urgent_that_applies(
    changes: dict[str, object], category: Category
) -> None:
    result = score(study(minutes_ago=5, **changes), now=T0, policy=POLICY)
    assert result.category is category
    assert result.sla_minutes == POLICY.sla_minutes[category]
    assert result.deadline == T0 - timedelta(minutes=5) + timedelta(minutes=result.sla_minutes)
    assert result.minutes_left == pytest.approx(result.sla_minutes - 5)


def test_waiting_part_rises_to_the_deadline_and_beyond() -> None:
    assert waiting_pressure(0, 60, 2) == 0
    assert waiting_pressure(30, 60, 2) == pytest.approx(0.5)
    assert waiting_pressure(60, 60, 2) == pytest.approx(1.0)
    assert waiting_pressure(90, 60, 2) == pytest.approx(2.0)  # half an hour late at 2 an hour
    assert waiting_pressure(-5, 60, 2) == 0  # clocks a little apart: never negative
    stat = study(order_priority=OrderPriority.STAT, minutes_ago=90)
    result = score(stat, now=T0, policy=POLICY)
    sla = POLICY.sla_minutes[Category.STAT]
    late_hours = (90 - sla) / 60
    assert result.overdue and result.minutes_left == pytest.approx(sla - 90)
    assert result.waiting == pytest.approx(
        POLICY.weight_waiting * (1 + POLICY.overdue_per_hour * late_hours)
    )


def test_explanation_names_findings_order_setting_and_wait() -> None:
    facts = StudyFacts(
        study_uid="1.2.3",
        arrived_at=T0 - timedelta(minutes=42),
        order_priority=OrderPriority.STAT,
        patient_setting=PatientSetting.EMERGENCY,
        findings=(ich(0.93), ich(0.61, shadow=True, label="ICH v2")),
    )
    policy = replace(POLICY, sla_minutes={**POLICY.sla_minutes, Category.CRITICAL: 60.0})
    result = score(facts, now=T0, policy=policy)
    assert result.reasons == (
        "ICH 0.93 (critical)",
        "STAT order",
        "emergency patient",
        "waited 42 min of 60",
    )
    late = score(facts, now=T0 + timedelta(minutes=33), policy=policy)
    assert late.reasons[-1] == "waited 75 min of 60 (15 min overdue)"


@st.composite
def any_study(draw: st.DrawFn) -> StudyFacts:
    findings = draw(
        st.lists(
            st.builds(
                AiFinding,
                code=st.sampled_from(["SCT:1386000", "SCT:36118008"]),
                label=st.just("finding"),
                severity=st.one_of(st.none(), st.sampled_from(Severity)),
                probability=st.floats(0, 1),
                present=st.booleans(),
                shadow=st.booleans(),
            ),
            max_size=3,
        )
    )
    return StudyFacts(
        study_uid="1.2.3",
        arrived_at=T0,
        order_priority=draw(st.one_of(st.none(), st.sampled_from(OrderPriority))),
        patient_setting=draw(st.one_of(st.none(), st.sampled_from(PatientSetting))),
        findings=tuple(findings),
    )


@given(
    facts=any_study(),
    first=st.floats(-10, 5000),
    more=st.floats(0, 5000),
    ageing=st.booleans(),
)
def test_score_never_falls_while_a_study_waits(
    facts: StudyFacts, first: float, more: float, ageing: bool
) -> None:
    policy = POLICY if ageing else POLICY.without_ageing()
    earlier = score(facts, now=T0 + timedelta(minutes=first), policy=policy)
    later = score(facts, now=T0 + timedelta(minutes=first + more), policy=policy)
    assert later.total >= earlier.total
    assert later.category is earlier.category
    assert later.ai == earlier.ai and later.clinical == earlier.clinical


def test_ageing_lets_a_long_waiting_routine_study_outrank_fresh_ones() -> None:
    routine = study("1.1", minutes_ago=0)
    fresh_high = study("2.2", order_priority=OrderPriority.HIGH)
    fresh_ich = study("3.3", findings=(ich(1.0),))

    def order_after(minutes: float, other: StudyFacts) -> list[str]:
        waited = replace(routine, arrived_at=T0 - timedelta(minutes=minutes))
        return [b.study_uid for b in rank([other, waited], now=T0, policy=POLICY)]

    assert order_after(10, fresh_high) == ["2.2", "1.1"]
    assert order_after(POLICY.sla_minutes[Category.ROUTINE], fresh_high) == ["1.1", "2.2"]
    # With the default weights a routine study at its deadline weighs as much as a fresh,
    # certain critical finding: the finding goes first until then, lateness after it, so no
    # study waits for ever.
    deadline = POLICY.sla_minutes[Category.ROUTINE]
    assert order_after(deadline - 1, fresh_ich) == ["3.3", "1.1"]
    assert order_after(deadline + 1, fresh_ich) == ["1.1", "3.3"]
    # Without ageing, waiting never helps.
    waited = replace(routine, arrived_at=T0 - timedelta(days=30))
    flat = rank([fresh_high, waited], now=T0, policy=POLICY.without_ageing())
    assert [b.study_uid for b in flat] == ["2.2", "1.1"]


def test_ties_break_by_arrival_then_uid_whatever_the_input_order() -> None:
    same_time = [study(uid, minutes_ago=20) for uid in ("1.9", "1.10", "1.2")]
    earlier = study("9.9", minutes_ago=20.5)
    items = [*same_time, earlier]
    no_ageing = POLICY.without_ageing()
    expected = ["9.9", "1.10", "1.2", "1.9"]  # UIDs compare as text
    for seed in range(5):
        random.Random(seed).shuffle(items)
        assert [b.study_uid for b in rank(items, now=T0, policy=no_ageing)] == expected
    assert sort_key(score(earlier, now=T0, policy=no_ageing)) < sort_key(
        score(same_time[0], now=T0, policy=no_ageing)
    )


def test_rank_puts_higher_scores_first() -> None:
    items = [
        study("routine", minutes_ago=30),
        study("stat", order_priority=OrderPriority.STAT),
        study("ich", findings=(ich(0.9),)),
        study("shadow", findings=(ich(0.99, shadow=True),)),
    ]
    ranked = rank(items, now=T0, policy=POLICY)
    assert [b.study_uid for b in ranked] == ["ich", "stat", "routine", "shadow"]
    totals = [b.total for b in ranked]
    assert totals == sorted(totals, reverse=True)


def test_order_priority_and_patient_setting_parse_dicom_and_hl7_values() -> None:
    assert OrderPriority.parse(" stat ") is OrderPriority.STAT
    assert OrderPriority.parse("MED") is OrderPriority.MEDIUM  # Study Priority ID
    assert OrderPriority.parse("LOW") is OrderPriority.LOW
    assert OrderPriority.parse("ASAP") is None and OrderPriority.parse(None) is None
    assert PatientSetting.parse("E") is PatientSetting.EMERGENCY  # HL7 PV1-2
    assert PatientSetting.parse("inpatient") is PatientSetting.INPATIENT
    assert PatientSetting.parse("o") is PatientSetting.OUTPATIENT
    assert PatientSetting.parse("P") is None and PatientSetting.parse(None) is None


def test_findings_from_rows_keeps_current_runs_and_labels() -> None:
    common = {"code_scheme": "SCT", "code_meaning": "Intracranial hemorrhage"}
    rows = [
        FindingRow(
            **common, code_value="1386000", severity="critical", probability=0.91,
            present=True, shadow=False, status="current",
        ),
        FindingRow(
            **common, code_value="1386000", severity="critical", probability=0.55,
            present=True, shadow=False, status="superseded",
        ),
        FindingRow(
            **common, code_value="1386000", severity="", probability=0.2,
            present=False, shadow=True, status="current",
        ),
    ]  # fmt: skip
    findings = findings_from_records(rows, {"SCT:1386000": "ICH"})
    assert findings == (
        AiFinding("SCT:1386000", "ICH", Severity.CRITICAL, 0.91, present=True, shadow=False),
        AiFinding("SCT:1386000", "ICH", None, 0.2, present=False, shadow=True),
    )
    assert findings_from_records(rows[:1])[0].label == "Intracranial hemorrhage"


def test_policy_from_settings_and_refusals() -> None:
    settings = Settings(
        triage_order_weights={"STAT": 0.9},
        triage_sla_critical_minutes=10,
        triage_weight_waiting=0.5,
    )
    policy = TriagePolicy.from_settings(settings)
    assert policy.order_weights[OrderPriority.STAT] == 0.9
    assert policy.order_weights[OrderPriority.HIGH] == Settings().triage_order_weights["HIGH"]
    assert policy.sla_minutes[Category.CRITICAL] == 10 and policy.weight_waiting == 0.5
    assert policy.without_ageing().weight_waiting == 0
    with pytest.raises(ValueError, match="SLA targets"):
        replace(policy, sla_minutes={**policy.sla_minutes, Category.ROUTINE: 5.0})
    with pytest.raises(ValueError, match="must not be negative"):
        replace(policy, weight_ai=-1.0)
    with pytest.raises(ValueError, match="order_weights lacks LOW"):
        replace(policy, order_weights={k: v for k, v in policy.order_weights.items() if k != "LOW"})
    with pytest.raises(ValueError, match="overdue_per_hour"):
        replace(policy, overdue_per_hour=0.0)
