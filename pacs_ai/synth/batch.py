"""Batches of synthetic studies: many CT heads and chest radiographs from one seed.

A batch is planned before it is generated, so the caller knows how many studies come (for a
progress bar) and which of them are positive. The share of positives is exact, not drawn:
``round(positive_share * n)`` of each kind, placed at seeded positions, so a benchmark of
250 studies at 0.3 always has 75 positives.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pacs_ai.synth.ct_head import generate_ct_head
from pacs_ai.synth.cxr import generate_cxr
from pacs_ai.synth.headers import StudyKind
from pacs_ai.synth.seeding import derived_int, rng_for
from pacs_ai.synth.study import SyntheticStudy


@dataclass(frozen=True)
class PlannedStudy:
    """One study of a batch: its kind, its own seed, its label and its case number."""

    kind: StudyKind
    seed: int
    positive: bool
    case_number: int


def _positives(seed: int, kind: str, count: int, share: float) -> set[int]:
    wanted = round(share * count)
    order = rng_for(seed, "batch", kind, "positives").permutation(count)
    return {int(i) for i in order[:wanted]}


def plan_batch(
    seed: int, *, ct_head: int = 0, cxr: int = 0, positive_share: float = 0.3
) -> list[PlannedStudy]:
    """The studies of a batch, CT heads first, then chest radiographs.

    Parameters
    ----------
    seed : int
        Seed of the batch; each study gets its own seed derived from it and its position.
    ct_head, cxr : int
        How many studies of each kind.
    positive_share : float
        Share (0-1) of each kind that holds the finding, rounded to whole studies.
    """
    if ct_head < 0 or cxr < 0:
        raise ValueError("study counts must not be negative")
    if not 0.0 <= positive_share <= 1.0:
        raise ValueError(f"positive_share must lie in [0, 1], got {positive_share}")
    plans: list[PlannedStudy] = []
    case = 1
    counts: tuple[tuple[StudyKind, int], ...] = (("ct_head", ct_head), ("cxr", cxr))
    for kind, count in counts:
        positives = _positives(seed, kind, count, positive_share)
        for index in range(count):
            study_seed = derived_int(seed, "batch", kind, str(index), digits=18)
            plans.append(PlannedStudy(kind, study_seed, index in positives, case))
            case += 1
    return plans


def generate_planned(
    plan: PlannedStudy, *, slices: int = 40, ct_size: int = 512, cxr_size: int = 1024
) -> SyntheticStudy:
    """Generate one planned study."""
    if plan.kind == "ct_head":
        return generate_ct_head(
            plan.seed,
            hemorrhage=plan.positive,
            slices=slices,
            size=ct_size,
            case_number=plan.case_number,
        )
    return generate_cxr(
        plan.seed, pneumothorax=plan.positive, size=cxr_size, case_number=plan.case_number
    )


def generate_batch(
    seed: int,
    *,
    ct_head: int = 0,
    cxr: int = 0,
    positive_share: float = 0.3,
    slices: int = 40,
    ct_size: int = 512,
    cxr_size: int = 1024,
) -> Iterator[SyntheticStudy]:
    """Yield the studies of :func:`plan_batch` one by one (memory stays at one study).

    Parameters
    ----------
    seed : int
        Seed of the batch.
    ct_head, cxr : int
        How many CT head studies and chest radiographs.
    positive_share : float
        Share of each kind with the finding (hemorrhage, pneumothorax).
    slices, ct_size : int
        Slices and rows/columns of each CT head.
    cxr_size : int
        Rows and columns of each chest radiograph.
    """
    for plan in plan_batch(seed, ct_head=ct_head, cxr=cxr, positive_share=positive_share):
        yield generate_planned(plan, slices=slices, ct_size=ct_size, cxr_size=cxr_size)
