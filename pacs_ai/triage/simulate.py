"""A reading room in a discrete-event simulation, to show what the worklist order does.

Studies arrive as a Poisson process (its rate may change through the day), some carry a disease
the AI looks for, the AI flags them with its sensitivity and flags healthy studies with
``1 - specificity``, and ``radiologists`` read them non-preemptively: a radiologist who becomes
free takes the top of the worklist. The order is either first-in, first-out or the real
:func:`pacs_ai.triage.score.rank`, the code the worklist API runs, so the figures describe
the product rather than a model of it.

Every replication draws its studies (arrivals, conditions, AI outputs, orders, reading times)
from streams of its own seed alone, so FIFO and pacs-ai see the very same studies (common
random numbers) and differences between them are not sampling noise of the input. Reported
figures are means over replications with a Student-t confidence interval (95% unless said).

Two published settings are built in:

* :func:`qucad_room`: one radiologist, traffic intensity 0.8, 10 min mean reading time,
  prevalence 10%, sensitivity and specificity 0.9: the setting of the FDA's QuCAD tool [1]_.
  Its steady state has closed forms (:func:`qucad_theory`), the M/M/1 queue with two
  non-preemptive priority classes [2]_ [3]_, which check the simulation and the order.
* :func:`baltruschat_room`: a busy chest X-ray reading room over one work day, after
  Baltruschat et al. [4]_, who report the mean report turnaround time of pneumothorax going
  from 80.1 min (FIFO) to 35.6 min with AI prioritization.

References
----------
.. [1] Y. L. E. Thompson et al., "Applying queueing theory to evaluate wait-time-savings of
   triage algorithms", Queueing Systems 108:579-610, 2024; QuCAD, FDA CDRH Catalog of
   Regulatory Science Tools.
.. [2] A. Cobham, "Priority assignment in waiting line problems", Operations Research
   2:70-76, 1954.
.. [3] L. Kleinrock, Queueing Systems, Vol. II: Computer Applications, Wiley, 1976, ch. 3.
.. [4] I. M. Baltruschat et al., "Smart chest X-ray worklist prioritization using artificial
   intelligence: a clinical workflow simulation", Eur Radiol 31:3837-3845, 2021.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from statistics import NormalDist
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from pacs_ai.pipeline.definition import Severity
from pacs_ai.triage.score import (
    AiFinding,
    OrderPriority,
    PatientSetting,
    StudyFacts,
    TriagePolicy,
    rank,
)

T = TypeVar("T")

#: The simulated clock starts here; only differences of times matter.
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
#: The group of studies that have none of the room's conditions.
OTHER = "other"
#: Groups by the AI's output, whatever the truth.
AI_POSITIVE = "AI positive"
AI_NEGATIVE = "AI negative"
#: Every study.
ALL = "all"
#: Student-t quantiles need this many replications to be accurate (see ``t_quantile``).
MIN_REPLICATIONS = 4


@dataclass(frozen=True)
class Condition:
    """A disease that one AI model looks for, and how often and how well it is found."""

    label: str
    code: str
    severity: Severity
    prevalence: float
    sensitivity: float
    specificity: float

    def __post_init__(self) -> None:
        """Refuse probabilities outside [0, 1]."""
        for name in ("prevalence", "sensitivity", "specificity"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{self.label}: {name} must lie in [0, 1]")


@dataclass(frozen=True)
class ReadingRoom:
    """A reading room: staff, reading times, arrivals, conditions and the mix of orders.

    Parameters
    ----------
    radiologists
        Radiologists reading at the same time, all through the simulation.
    reading_minutes
        Mean reading time of one study.
    arrivals
        Consecutive pieces of the arrival process, ``(minutes, studies per hour)``; studies
        stop arriving after the last piece and the room reads until the worklist is empty.
    conditions
        Diseases the AI looks for; a study has at most one (a disease-free study has none).
    reading_cv
        Coefficient of variation of the (gamma distributed) reading time; 1 is exponential.
    order_mix, setting_mix
        ``(value, weight)`` pairs the order priority and patient setting are drawn from; None
        stands for unknown.
    warmup_minutes
        Studies arriving before this are read but not counted (steady-state runs start empty).
    threshold
        The AI's operating point: probabilities at or above it are present findings.
    """

    radiologists: int
    reading_minutes: float
    arrivals: tuple[tuple[float, float], ...]
    conditions: tuple[Condition, ...]
    reading_cv: float = 1.0
    order_mix: tuple[tuple[OrderPriority | None, float], ...] = ((None, 1.0),)
    setting_mix: tuple[tuple[PatientSetting | None, float], ...] = ((None, 1.0),)
    warmup_minutes: float = 0.0
    threshold: float = 0.5

    def __post_init__(self) -> None:
        """Refuse a room that cannot run."""
        if self.radiologists < 1 or self.reading_minutes <= 0 or self.reading_cv <= 0:
            raise ValueError("a room needs radiologists and positive reading times")
        if not self.arrivals or any(m <= 0 or r < 0 for m, r in self.arrivals):
            raise ValueError("arrivals are (minutes > 0, studies per hour >= 0) pieces")
        if sum(c.prevalence for c in self.conditions) > 1.0:
            raise ValueError("the prevalences of the conditions add up to more than 1")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("the AI threshold must lie in (0, 1)")


@dataclass(frozen=True)
class Run:
    """One replication: when each study arrived, was taken and was read, and its groups.

    Times are minutes since the start. ``start_order`` holds study UIDs in the order the
    radiologists took them.
    """

    arrived: NDArray[np.float64]
    started: NDArray[np.float64]
    finished: NDArray[np.float64]
    condition: tuple[str, ...]
    ai_positive: NDArray[np.bool_]
    start_order: tuple[str, ...]
    counted: NDArray[np.bool_]

    def groups(self) -> dict[str, NDArray[np.bool_]]:
        """Masks of the counted studies: by condition (and ``other``), by AI output, and all."""
        labels = np.array(self.condition)
        groups = {
            label: (labels == label) & self.counted for label in dict.fromkeys(self.condition)
        }
        groups[AI_POSITIVE] = self.ai_positive & self.counted
        groups[AI_NEGATIVE] = ~self.ai_positive & self.counted
        groups[ALL] = self.counted.copy()
        return groups


@dataclass(frozen=True)
class WaitStats:
    """Waiting (arrival to start of reading) and turnaround (to end of reading), in minutes."""

    n: int
    mean_wait: float
    p95_wait: float
    max_wait: float
    mean_turnaround: float
    p95_turnaround: float
    max_turnaround: float


METRICS = (
    "mean_wait",
    "p95_wait",
    "max_wait",
    "mean_turnaround",
    "p95_turnaround",
    "max_turnaround",
)


def wait_stats(run: Run) -> dict[str, WaitStats]:
    """Statistics of each non-empty group of one replication."""
    waits = run.started - run.arrived
    turnarounds = run.finished - run.arrived
    stats = {}
    for name, mask in run.groups().items():
        if not mask.any():
            continue
        wait, turnaround = waits[mask], turnarounds[mask]
        stats[name] = WaitStats(
            n=int(mask.sum()),
            mean_wait=float(wait.mean()),
            p95_wait=float(np.percentile(wait, 95)),
            max_wait=float(wait.max()),
            mean_turnaround=float(turnaround.mean()),
            p95_turnaround=float(np.percentile(turnaround, 95)),
            max_turnaround=float(turnaround.max()),
        )
    return stats


def _pick(rng: np.random.Generator, mix: Sequence[tuple[T, float]], size: int) -> list[T]:
    values = [value for value, _ in mix]
    weights = np.array([weight for _, weight in mix], dtype=float)
    return [values[i] for i in rng.choice(len(values), size=size, p=weights / weights.sum())]


@dataclass(frozen=True)
class Cohort:
    """The studies of one replication, in arrival order, and what only the simulation knows.

    ``arrived`` and ``reading`` are minutes; ``condition`` is the true condition's label
    (:data:`OTHER` for none) and ``ai_positive`` whether any model flagged the study.
    """

    facts: tuple[StudyFacts, ...]
    arrived: NDArray[np.float64]
    reading: NDArray[np.float64]
    condition: tuple[str, ...]
    ai_positive: NDArray[np.bool_]


def draw_cohort(room: ReadingRoom, seed: int) -> Cohort:
    """The studies of one replication, drawn from ``seed`` alone.

    Arrivals are a Poisson process, uniform order statistics within each piece of constant
    rate. A study has condition ``k`` with its prevalence; the model of each condition
    flags a diseased study with its sensitivity and a study without it with one minus its
    specificity, and reports a probability uniform above the threshold when it flags and
    below it otherwise: a binary device, as the QuCAD theory assumes, whose probability
    carries no further information on the truth. Each attribute comes from a stream of its
    own (``SeedSequence(seed).spawn``), so a change to, say, the order mix leaves arrivals and
    reading times as they were.
    """
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]
    arrival_rng, condition_rng, ai_rng, order_rng, setting_rng, reading_rng = streams
    pieces, start = [], 0.0
    for minutes, per_hour in room.arrivals:
        count = arrival_rng.poisson(per_hour / 60.0 * minutes)
        pieces.append(np.sort(start + arrival_rng.uniform(0.0, minutes, count)))
        start += minutes
    arrived = np.concatenate(pieces)
    size = len(arrived)

    prevalences = [c.prevalence for c in room.conditions]
    which = condition_rng.choice(
        len(prevalences) + 1, size=size, p=[*prevalences, 1.0 - sum(prevalences)]
    )
    labels = tuple(room.conditions[i].label if i < len(prevalences) else OTHER for i in which)
    outputs = []
    ai_positive = np.zeros(size, dtype=bool)
    for index, condition in enumerate(room.conditions):
        flagged = np.where(
            which == index,
            ai_rng.random(size) < condition.sensitivity,
            ai_rng.random(size) < 1.0 - condition.specificity,
        )
        probability = np.where(
            flagged,
            ai_rng.uniform(room.threshold, 1.0, size),
            ai_rng.uniform(0.0, room.threshold, size),
        )
        ai_positive |= flagged
        outputs.append((condition, flagged, probability))

    orders = _pick(order_rng, room.order_mix, size)
    settings = _pick(setting_rng, room.setting_mix, size)
    shape = 1.0 / room.reading_cv**2
    reading = reading_rng.gamma(shape, room.reading_minutes / shape, size)

    facts = tuple(
        StudyFacts(
            study_uid=f"sim-{i:07d}",
            arrived_at=EPOCH + timedelta(minutes=float(arrived[i])),
            order_priority=orders[i],
            patient_setting=settings[i],
            findings=tuple(
                AiFinding(
                    code=condition.code,
                    label=condition.label,
                    severity=condition.severity,
                    probability=float(probability[i]),
                    present=bool(flagged[i]),
                )
                for condition, flagged, probability in outputs
            ),
        )
        for i in range(size)
    )
    return Cohort(
        facts=facts, arrived=arrived, reading=reading, condition=labels, ai_positive=ai_positive
    )


def simulate(room: ReadingRoom, policy: TriagePolicy | None, *, seed: int) -> Run:
    """One replication, read first-in first-out (``policy`` None) or in pacs-ai's order.

    Events are arrivals (drawn in advance, in time order) and ends of reading (a heap of
    the busy radiologists' finishing times); after each, free radiologists take the top of
    the worklist, ranked at that moment by :func:`~pacs_ai.triage.score.rank`.
    """
    cohort = draw_cohort(room, seed)
    facts, arrived = cohort.facts, cohort.arrived
    size = len(facts)
    started = np.full(size, np.nan)
    finished = np.full(size, np.nan)
    waiting: dict[str, int] = {}
    busy: list[float] = []
    order: list[str] = []
    free, following = room.radiologists, 0
    while following < size or busy:
        if busy and (following == size or busy[0] <= arrived[following]):
            now = heapq.heappop(busy)
            free += 1
        else:
            now = float(arrived[following])
            waiting[facts[following].study_uid] = following
            following += 1
        while free and waiting:
            if policy is None:
                uid = next(iter(waiting))  # insertion order is arrival order
            else:
                at = EPOCH + timedelta(minutes=now)
                unread = (facts[i] for i in waiting.values())
                uid = rank(unread, now=at, policy=policy)[0].study_uid
            index = waiting.pop(uid)
            order.append(uid)
            started[index] = now
            finished[index] = now + cohort.reading[index]
            heapq.heappush(busy, finished[index])
            free -= 1
    return Run(
        arrived=arrived,
        started=started,
        finished=finished,
        condition=cohort.condition,
        ai_positive=cohort.ai_positive,
        start_order=tuple(order),
        counted=arrived >= room.warmup_minutes,
    )


@dataclass(frozen=True)
class Estimate:
    """A mean over replications and its two-sided confidence interval (Student t)."""

    mean: float
    low: float
    high: float
    replications: int

    def covers(self, value: float) -> bool:
        """Whether ``value`` lies in the interval."""
        return self.low <= value <= self.high


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom.

    The Cornish-Fisher expansion of Abramowitz and Stegun 26.7.5 around the normal quantile
    (numpy has no t distribution and scipy is not a dependency). From 3 degrees of freedom up
    it is within 0.1% of the tables at p 0.975 (2.776 at df 4, 2.262 at df 9) and within 1%
    at p 0.995, which is why replications start at :data:`MIN_REPLICATIONS`.
    """
    z = NormalDist().inv_cdf(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def estimate(values: Sequence[float], level: float = 0.95) -> Estimate:
    """The mean of per-replication values with its ``level`` Student-t interval."""
    if len(values) < MIN_REPLICATIONS:
        raise ValueError(f"an interval needs at least {MIN_REPLICATIONS} replications")
    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    quantile = t_quantile(0.5 + level / 2, len(data) - 1)
    half = quantile * float(data.std(ddof=1)) / math.sqrt(len(data))
    return Estimate(mean=mean, low=mean - half, high=mean + half, replications=len(data))


def replicate(
    room: ReadingRoom,
    policy: TriagePolicy | None,
    *,
    replications: int,
    seed: int,
    level: float = 0.95,
) -> dict[str, dict[str, Estimate]]:
    """Group -> metric -> estimate (``level`` interval) over ``replications`` runs.

    Replication ``k`` uses seed ``seed + k`` whatever the policy, so two policies replicated
    with the same ``seed`` are compared on the same studies. A group missing from a
    replication (no study of a rare condition) contributes nothing to that replication.
    """
    per_group: dict[str, dict[str, list[float]]] = {}
    for k in range(replications):
        for group, stats in wait_stats(simulate(room, policy, seed=seed + k)).items():
            metrics = per_group.setdefault(group, {name: [] for name in METRICS})
            for name in METRICS:
                metrics[name].append(getattr(stats, name))
    return {
        group: {name: estimate(values, level) for name, values in metrics.items()}
        for group, metrics in per_group.items()
        if len(metrics[METRICS[0]]) >= MIN_REPLICATIONS
    }


def priority_waits(
    arrival_rates: Sequence[float], mean_service: float, service_cv: float = 1.0
) -> list[float]:
    """Mean queueing waits of the classes of an M/G/1 non-preemptive priority queue.

    Cobham's formula [2]_ [3]_: class ``k`` (0 most urgent) waits
    ``W0 / ((1 - sigma_{k-1}) (1 - sigma_k))`` with ``W0 = sum_i lambda_i E[S^2] / 2`` the
    mean residual work in service and ``sigma_k = sum_{i <= k} rho_i``. Service times are
    alike in every class, ``E[S^2] = mean^2 (1 + cv^2)`` (exponential: ``2 mean^2``).
    """
    second_moment = mean_service**2 * (1.0 + service_cv**2)
    residual = sum(arrival_rates) * second_moment / 2.0
    waits, sigma = [], 0.0
    for rate in arrival_rates:
        before = sigma
        sigma += rate * mean_service
        if sigma >= 1.0:
            raise ValueError("the queue is unstable: utilization reaches 1")
        waits.append(residual / ((1.0 - before) * (1.0 - sigma)))
    return waits


@dataclass(frozen=True)
class QucadTheory:
    """Steady-state mean waits (minutes) of the QuCAD setting, FIFO and AI-prioritized."""

    fifo: float
    ai_positive: float
    ai_negative: float
    diseased_prioritized: float
    healthy_prioritized: float


def qucad_theory(
    *,
    utilization: float,
    reading_minutes: float,
    prevalence: float,
    sensitivity: float,
    specificity: float,
) -> QucadTheory:
    """Mean waits of an M/M/1 reading room without and with a triage device [1]_.

    Without it the queue is FIFO, ``Wq = rho / (mu (1 - rho))``. With it AI-positive studies
    form the first of two non-preemptive priority classes (:func:`priority_waits`). A
    diseased study is AI-positive with probability ``sensitivity``, a healthy one with
    ``1 - specificity``, so their mean waits are the matching mixtures of the class waits.
    """
    rate = utilization / reading_minutes
    positive_share = prevalence * sensitivity + (1.0 - prevalence) * (1.0 - specificity)
    first, second = priority_waits(
        [rate * positive_share, rate * (1.0 - positive_share)], reading_minutes
    )
    return QucadTheory(
        fifo=utilization * reading_minutes / (1.0 - utilization),
        ai_positive=first,
        ai_negative=second,
        diseased_prioritized=sensitivity * first + (1.0 - sensitivity) * second,
        healthy_prioritized=(1.0 - specificity) * first + specificity * second,
    )


#: The QuCAD setting [1]_: rho 0.8, one radiologist, 10 min, prevalence 10%, sens = spec = 0.9.
QUCAD = {
    "utilization": 0.8,
    "reading_minutes": 10.0,
    "prevalence": 0.1,
    "sensitivity": 0.9,
    "specificity": 0.9,
}
#: The finding the QuCAD room's AI reports: intracranial hemorrhage (SNOMED CT 1386000).
ICH = ("ICH", "SCT:1386000")
#: Pneumothorax (SNOMED CT 36118008), the critical finding of the chest X-ray room.
PNEUMOTHORAX = ("pneumothorax", "SCT:36118008")


def qucad_room(*, minutes: float, warmup_minutes: float) -> ReadingRoom:
    """The QuCAD setting as a steady-state room: exponential reading, constant arrivals.

    The AI looks for a critical finding (intracranial hemorrhage); orders and patient
    settings are unknown, so only the AI separates studies, as in the theory.
    """
    label, code = ICH
    return ReadingRoom(
        radiologists=1,
        reading_minutes=QUCAD["reading_minutes"],
        arrivals=((minutes, 60.0 * QUCAD["utilization"] / QUCAD["reading_minutes"]),),
        conditions=(
            Condition(
                label=label,
                code=code,
                severity=Severity.CRITICAL,
                prevalence=QUCAD["prevalence"],
                sensitivity=QUCAD["sensitivity"],
                specificity=QUCAD["specificity"],
            ),
        ),
        warmup_minutes=warmup_minutes,
    )


def qucad_expected() -> QucadTheory:
    """:func:`qucad_theory` of the QuCAD setting."""
    return qucad_theory(**QUCAD)


#: Arrivals of the chest X-ray day, ``(minutes, studies per hour)`` from 07:00.
CXR_DAY: tuple[tuple[float, float], ...] = (
    (60.0, 20.0),  # 07-08
    (300.0, 50.0),  # 08-13 morning peak (ward rounds, ICU): the room reads 30 an hour
    (240.0, 45.0),  # 13-17
    (120.0, 25.0),  # 17-19
    (180.0, 10.0),  # 19-22
)
#: Order priorities of the chest X-ray day.
CXR_ORDERS: tuple[tuple[OrderPriority | None, float], ...] = (
    (OrderPriority.STAT, 0.03),
    (OrderPriority.HIGH, 0.10),
    (OrderPriority.ROUTINE, 0.87),
)


def baltruschat_room() -> ReadingRoom:
    """A busy chest X-ray reading room over one work day, after Baltruschat et al. [4]_.

    Three radiologists read 30 studies an hour (6 min mean, gamma distributed with a
    coefficient of variation of 0.5). About 535 studies arrive from 07:00 to 22:00, 45 to 50
    an hour from 08:00 to 17:00, so the worklist grows for nine hours (to about 160 studies,
    five hours of work) and is read empty late in the evening. Pneumothorax has a prevalence
    of 2%, and the AI finds it with sensitivity 0.85 and specificity 0.9; 3% of orders are
    STAT and 10% HIGH, patient settings are unknown.
    """
    label, code = PNEUMOTHORAX
    return ReadingRoom(
        radiologists=3,
        reading_minutes=6.0,
        reading_cv=0.5,
        arrivals=CXR_DAY,
        conditions=(
            Condition(
                label=label,
                code=code,
                severity=Severity.CRITICAL,
                prevalence=0.02,
                sensitivity=0.85,
                specificity=0.9,
            ),
        ),
        order_mix=CXR_ORDERS,
    )


def relative_change(before: float, after: float) -> float:
    """``(after - before) / before``: -0.556 is Baltruschat's 80.1 -> 35.6 min."""
    return (after - before) / before


#: Baltruschat et al.'s mean pneumothorax turnaround, FIFO and AI-prioritized (minutes).
BALTRUSCHAT_PNEUMOTHORAX_MINUTES = (80.1, 35.6)
