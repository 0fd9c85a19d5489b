"""The priority model: one explainable score per unread study, and the worklist order.

The worklist API and the reading-room simulation (:mod:`pacs_ai.triage.simulate`) both call
this module, so what the simulation proves about the order is what radiologists get. It is
pure: no database, no I/O, no clock (``now`` is an argument).

A study's score is the sum of three weighted parts:

(a) **AI**: the strongest present finding of an *active* model, ``severity weight x
    probability``. Shadow models (being evaluated, not yet trusted), superseded runs and
    findings below the pipeline's threshold (``present`` is false) do not count.
(b) **Clinical**: the order's priority (Requested Procedure Priority (0040,1003) [4]_, or the
    retired Study Priority ID (0032,000C): STAT, HIGH, MEDIUM, ROUTINE, LOW) plus the patient
    setting where known (HL7 v2 PV1-2 Patient Class: emergency, inpatient, outpatient).
(c) **Waiting**: the share of the category's service-level target (SLA) already used,
    rising to 1 at the deadline; past it, ``overdue_per_hour`` more for every hour late. It
    grows without bound, so every study eventually reaches the top (ageing).

The category is the most urgent that applies: a critical AI finding makes it *critical*; a
STAT order or an emergency patient *stat*; a HIGH order or an urgent AI finding *urgent*;
anything else *routine*. It sets the SLA the waiting part runs against.

Why ageing per SLA: a pure priority order leaves the lowest class to starve, and an AI's false
negatives sink with it; Baltruschat et al. [1]_ found the maximum report turnaround time of
pneumothorax rising from 890 to 1293 min with AI prioritization, and bounded it with an upper
waiting limit after which a study gets the highest urgency. The SLA deadline is that limit made
smooth: before it, a study with a finding or an urgent order goes first; after it, late studies
are read by how late they are (earliest deadline first, which minimises the maximum lateness
[2]_), a finding still worth a bounded head start. Priority rising with the time waited is
Kleinrock's delay-dependent discipline [3]_. With ``weight_waiting = 0`` the model is a plain
non-preemptive priority order, the one the M/M/1 priority formulas describe.

References
----------
.. [1] I. M. Baltruschat et al., "Smart chest X-ray worklist prioritization using artificial
   intelligence: a clinical workflow simulation", Eur Radiol 31:3837-3845, 2021.
.. [2] J. R. Jackson, "Scheduling a production line to minimize maximum tardiness", Research
   Report 43, Management Science Research Project, UCLA, 1955.
.. [3] L. Kleinrock, "A delay-dependent queue discipline", Naval Research Logistics Quarterly
   11:329-341, 1964; and Queueing Systems, Vol. II, Wiley, 1976, ch. 3.
.. [4] DICOM PS3.3, Requested Procedure Module: Requested Procedure Priority (0040,1003).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from pacs_ai.config import Settings
from pacs_ai.pipeline.definition import Severity


class Category(StrEnum):
    """What a study is, for its service-level target; most urgent first."""

    CRITICAL = "critical"
    STAT = "stat"
    URGENT = "urgent"
    ROUTINE = "routine"


class OrderPriority(StrEnum):
    """The order's priority, as Requested Procedure Priority (0040,1003) names it."""

    STAT = "STAT"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    ROUTINE = "ROUTINE"
    LOW = "LOW"

    @classmethod
    def parse(cls, value: str | None) -> OrderPriority | None:
        """The priority of a DICOM value, or None when absent or unknown.

        Requested Procedure Priority uses STAT, HIGH, ROUTINE, MEDIUM, LOW; the retired Study
        Priority ID (0032,000C) uses HIGH, MED, LOW, so MED is read as MEDIUM.
        """
        if value is None:
            return None
        text = value.strip().upper()
        if text == "MED":
            return cls.MEDIUM
        return cls.__members__.get(text)


class PatientSetting(StrEnum):
    """Where the patient is, from HL7 v2 PV1-2 Patient Class (table 0004)."""

    EMERGENCY = "emergency"
    INPATIENT = "inpatient"
    OUTPATIENT = "outpatient"

    @classmethod
    def parse(cls, value: str | None) -> PatientSetting | None:
        """The setting of a PV1-2 code (E, I, O) or its name; None when absent or unknown."""
        if value is None:
            return None
        text = value.strip().lower()
        for setting in cls:
            if text in (setting.value, setting.value[0]):
                return setting
        return None


@dataclass(frozen=True, slots=True)
class AiFinding:
    """What one model said about one study, as the score needs it.

    Parameters
    ----------
    code
        The finding code, ``SCHEME:VALUE`` (``SCT:1386000``).
    label
        The short name shown in explanations (``ICH``).
    severity
        The pipeline's triage mapping of the code; None where the pipeline maps none.
    probability
        The model's study-level probability, 0 to 1.
    present
        Whether the probability reached the pipeline's threshold.
    shadow
        Whether the model runs in shadow mode (evaluated, not yet trusted).
    """

    code: str
    label: str
    severity: Severity | None
    probability: float
    present: bool
    shadow: bool = False


class FindingRecord(Protocol):
    """The attributes of a stored finding that the score reads (a ``FindingRow``)."""

    @property
    def code_scheme(self) -> str: ...

    @property
    def code_value(self) -> str: ...

    @property
    def code_meaning(self) -> str: ...

    @property
    def severity(self) -> str: ...

    @property
    def probability(self) -> float: ...

    @property
    def present(self) -> bool: ...

    @property
    def shadow(self) -> bool: ...

    @property
    def status(self) -> str: ...


def findings_from_records(
    records: Iterable[FindingRecord], labels: Mapping[str, str] | None = None
) -> tuple[AiFinding, ...]:
    """The current findings of stored rows; superseded runs are left out.

    ``labels`` maps a code (``SCT:1386000``) to a short label (``ICH``); the code meaning is
    the label otherwise. Shadow findings are kept (the score ignores them) so that a caller
    can still show them apart.
    """
    names = labels or {}
    findings = []
    for record in records:
        if record.status != "current":
            continue
        code = f"{record.code_scheme}:{record.code_value}"
        findings.append(
            AiFinding(
                code=code,
                label=names.get(code, record.code_meaning),
                severity=Severity(record.severity) if record.severity else None,
                probability=record.probability,
                present=record.present,
                shadow=record.shadow,
            )
        )
    return tuple(findings)


@dataclass(frozen=True, slots=True)
class StudyFacts:
    """What the score knows of one unread study.

    ``arrived_at`` is when the study reached the archive, timezone-aware like the ``now``
    it is scored at; unknown order priority and patient setting are None and add nothing.
    """

    study_uid: str
    arrived_at: datetime
    order_priority: OrderPriority | None = None
    patient_setting: PatientSetting | None = None
    findings: tuple[AiFinding, ...] = ()


@dataclass(frozen=True)
class TriagePolicy:
    """The weights and service-level targets of the score; built from :class:`Settings`."""

    weight_ai: float
    weight_clinical: float
    weight_waiting: float
    overdue_per_hour: float
    severity_weights: Mapping[Severity, float]
    order_weights: Mapping[OrderPriority, float]
    setting_weights: Mapping[PatientSetting, float]
    sla_minutes: Mapping[Category, float]

    def __post_init__(self) -> None:
        """Refuse a policy that could not order studies sensibly."""
        if min(self.weight_ai, self.weight_clinical, self.weight_waiting) < 0:
            raise ValueError("triage weights must not be negative")
        if self.overdue_per_hour <= 0:
            raise ValueError("overdue_per_hour must be positive: late studies must keep rising")
        tables: tuple[tuple[str, Container[object], type[StrEnum]], ...] = (
            ("severity_weights", self.severity_weights, Severity),
            ("order_weights", self.order_weights, OrderPriority),
            ("setting_weights", self.setting_weights, PatientSetting),
            ("sla_minutes", self.sla_minutes, Category),
        )
        for name, table, keys in tables:
            missing = [key.value for key in keys if key not in table]
            if missing:
                raise ValueError(f"{name} lacks {', '.join(missing)}")
        slas = [self.sla_minutes[category] for category in Category]
        if min(slas) <= 0 or slas != sorted(slas):
            raise ValueError(
                "SLA targets must be positive and not shorter for a less urgent category "
                f"(critical <= stat <= urgent <= routine): {slas}"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> TriagePolicy:
        """The policy the ``triage_*`` settings describe."""
        return cls(
            weight_ai=settings.triage_weight_ai,
            weight_clinical=settings.triage_weight_clinical,
            weight_waiting=settings.triage_weight_waiting,
            overdue_per_hour=settings.triage_overdue_per_hour,
            severity_weights={Severity(k): v for k, v in settings.triage_severity_weights.items()},
            order_weights={OrderPriority(k): v for k, v in settings.triage_order_weights.items()},
            setting_weights={
                PatientSetting(k): v for k, v in settings.triage_setting_weights.items()
            },
            sla_minutes={
                Category.CRITICAL: settings.triage_sla_critical_minutes,
                Category.STAT: settings.triage_sla_stat_minutes,
                Category.URGENT: settings.triage_sla_urgent_minutes,
                Category.ROUTINE: settings.triage_sla_routine_minutes,
            },
        )

    def without_ageing(self) -> TriagePolicy:
        """The same policy with the waiting part off: a pure non-preemptive priority order."""
        return replace(self, weight_waiting=0.0)


_SETTING_REASON = {
    PatientSetting.EMERGENCY: "emergency patient",
    PatientSetting.INPATIENT: "inpatient",
    PatientSetting.OUTPATIENT: "outpatient",
}


@dataclass(slots=True)
class ScoreBreakdown:
    """A study's score and why: what the worklist shows beside each row.

    ``ai + clinical + waiting == total``; each part is already weighted. ``findings`` are the
    findings that counted, strongest first. The deadline, the minutes left and the reasons
    are derived on access, so that ranking thousands of studies pays only for the rows shown.
    Treat it as read-only: it is not frozen because a frozen dataclass's ``__init__`` takes a
    third of the time of :func:`rank`.
    """

    study_uid: str
    arrived_at: datetime
    category: Category
    total: float
    ai: float
    clinical: float
    waiting: float
    sla_minutes: float
    waited_minutes: float
    findings: tuple[AiFinding, ...]
    order_priority: OrderPriority | None
    patient_setting: PatientSetting | None

    @property
    def deadline(self) -> datetime:
        """When the study's SLA runs out."""
        return self.arrived_at + timedelta(minutes=self.sla_minutes)

    @property
    def minutes_left(self) -> float:
        """Minutes to the deadline; negative once it has passed."""
        return self.sla_minutes - self.waited_minutes

    @property
    def overdue(self) -> bool:
        """Whether the study has waited past its SLA deadline."""
        return self.waited_minutes > self.sla_minutes

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the study stands where it does: counted findings, order, setting, wait.

        For example ``("ICH 0.93 (critical)", "STAT order", "waited 42 min of 60")``.
        """
        reasons = [f"{f.label} {f.probability:.2f} ({f.severity})" for f in self.findings]
        if self.order_priority is not None:
            reasons.append(f"{self.order_priority} order")
        if self.patient_setting is not None:
            reasons.append(_SETTING_REASON[self.patient_setting])
        waited = f"waited {self.waited_minutes:.0f} min of {self.sla_minutes:.0f}"
        if self.overdue:
            waited += f" ({-self.minutes_left:.0f} min overdue)"
        reasons.append(waited)
        return tuple(reasons)


def category_of(
    findings: Iterable[AiFinding],
    order_priority: OrderPriority | None,
    patient_setting: PatientSetting | None,
) -> Category:
    """The most urgent category that applies to counted ``findings`` and the order."""
    severities = [finding.severity for finding in findings]
    if Severity.CRITICAL in severities:
        return Category.CRITICAL
    if order_priority is OrderPriority.STAT or patient_setting is PatientSetting.EMERGENCY:
        return Category.STAT
    if order_priority is OrderPriority.HIGH or Severity.URGENT in severities:
        return Category.URGENT
    return Category.ROUTINE


def waiting_pressure(waited_minutes: float, sla_minutes: float, overdue_per_hour: float) -> float:
    """The unweighted waiting part: the share of the SLA used, then ``overdue_per_hour`` an hour.

    Up to the deadline it rises from 0 to 1, faster for a shorter SLA. Past it, lateness
    counts in minutes, alike for every category: between two late studies the later deadline
    waits (earliest deadline first, the rule that minimises the maximum lateness; Jackson
    1955 [2]_), and a finding or an order only gives a bounded head start. Counting lateness as
    a share of the SLA instead would let a late critical study (15 min SLA) outgrow a late
    routine one many times over, which is a strict priority again. Continuous,
    non-decreasing and unbounded, so no study is overtaken for ever.
    """
    waited = max(waited_minutes, 0.0)
    if waited <= sla_minutes:
        return waited / sla_minutes
    return 1.0 + overdue_per_hour * (waited - sla_minutes) / 60.0


def score(facts: StudyFacts, *, now: datetime, policy: TriagePolicy) -> ScoreBreakdown:
    """The priority of one unread study at ``now``, with what explains it."""
    weights = policy.severity_weights
    # An active model's present finding with a triage mapping; shadow models and findings
    # below the pipeline's threshold do not move the worklist.
    strengths = [
        (weights[finding.severity] * finding.probability, finding)
        for finding in facts.findings
        if finding.present and not finding.shadow and finding.severity is not None
    ]
    if len(strengths) > 1:
        strengths.sort(key=lambda pair: (-pair[0], pair[1].code))
    counted = tuple([finding for _, finding in strengths]) if strengths else ()
    clinical = 0.0
    if facts.order_priority is not None:
        clinical += policy.order_weights[facts.order_priority]
    if facts.patient_setting is not None:
        clinical += policy.setting_weights[facts.patient_setting]
    category = category_of(counted, facts.order_priority, facts.patient_setting)
    sla = policy.sla_minutes[category]
    waited = max((now - facts.arrived_at).total_seconds() / 60.0, 0.0)
    ai_part = policy.weight_ai * strengths[0][0] if strengths else 0.0
    clinical_part = policy.weight_clinical * clinical
    waiting_part = policy.weight_waiting * waiting_pressure(waited, sla, policy.overdue_per_hour)
    return ScoreBreakdown(
        study_uid=facts.study_uid,
        arrived_at=facts.arrived_at,
        category=category,
        total=ai_part + clinical_part + waiting_part,
        ai=ai_part,
        clinical=clinical_part,
        waiting=waiting_part,
        sla_minutes=sla,
        waited_minutes=waited,
        findings=counted,
        order_priority=facts.order_priority,
        patient_setting=facts.patient_setting,
    )


def sort_key(breakdown: ScoreBreakdown) -> tuple[float, datetime, str]:
    """Worklist order: highest score first; ties by arrival (earliest first), then study UID."""
    return (-breakdown.total, breakdown.arrived_at, breakdown.study_uid)


def rank(
    items: Iterable[StudyFacts], *, now: datetime, policy: TriagePolicy
) -> list[ScoreBreakdown]:
    """Unread studies in the order they should be read, each with its breakdown."""
    return sorted((score(facts, now=now, policy=policy) for facts in items), key=sort_key)
