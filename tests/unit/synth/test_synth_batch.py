"""Batches: exact positive shares, per-study seeds, determinism."""

from __future__ import annotations

import pytest

from pacs_ai.synth import generate_batch, plan_batch


@pytest.mark.parametrize(("count", "share", "expected"), [(10, 0.3, 3), (7, 0.5, 4), (5, 0.0, 0)])
def test_plan_has_the_requested_share(count: int, share: float, expected: int) -> None:
    plans = plan_batch(1, ct_head=count, cxr=count, positive_share=share)
    for kind in ("ct_head", "cxr"):
        assert sum(p.positive for p in plans if p.kind == kind) == expected
    assert [p.case_number for p in plans] == list(range(1, 2 * count + 1))
    assert len({p.seed for p in plans}) == 2 * count


def test_plan_is_deterministic_and_seed_dependent() -> None:
    assert plan_batch(4, ct_head=6, cxr=6) == plan_batch(4, ct_head=6, cxr=6)
    assert plan_batch(4, ct_head=6, cxr=6) != plan_batch(5, ct_head=6, cxr=6)


def test_cxr_batch_labels_match_the_share() -> None:
    studies = list(generate_batch(2, cxr=10, positive_share=0.3, cxr_size=64))
    assert [s.kind for s in studies] == ["cxr"] * 10
    assert sum(s.label for s in studies) == 3
    for study in studies:
        assert study.truth["pneumothorax"] is study.label
        assert study.mask is not None and bool(study.mask.any()) is study.label


def test_ct_batch_masks_match_labels() -> None:
    studies = list(generate_batch(3, ct_head=4, positive_share=0.5, slices=6, ct_size=48))
    assert sum(s.label for s in studies) == 2
    for study in studies:
        assert study.mask is not None
        assert study.mask.shape == (6, 48, 48)
        assert bool(study.mask.any()) is study.label
    names = [str(s.datasets[0].PatientName) for s in studies]
    assert names == [f"SYNTH^CASE{n:04d}" for n in range(1, 5)]


def test_bad_batch_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        plan_batch(1, ct_head=-1)
    with pytest.raises(ValueError):
        plan_batch(1, cxr=2, positive_share=1.5)
