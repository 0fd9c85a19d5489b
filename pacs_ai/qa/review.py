"""Writing reviews: the fixed list of reasons, the rules a review must keep, the history.

Reasons come from a fixed list so that the statistics can count them: a free-text reason per
review would be unreadable across a thousand reviews. The comment holds the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs_ai.pipeline.definition import Severity
from pacs_ai.pipeline.schema import FindingRow
from pacs_ai.qa.schema import Decision, FindingReview

COMMENT_MAX = 2048
LOCATION_MAX = 64


@dataclass(frozen=True)
class Reason:
    """One entry of the fixed list."""

    code: str
    label: str


REASONS: dict[Decision, tuple[Reason, ...]] = {
    Decision.ACCEPT: (
        Reason("confirmed", "Confirmed on the images"),
        Reason("other", "Other (see comment)"),
    ),
    Decision.REJECT: (
        Reason("false_positive_artifact", "False positive: artifact"),
        Reason("false_positive_anatomy", "False positive: normal anatomy or calcification"),
        Reason("missed_finding", "Missed: the finding is present"),
        Reason("poor_image_quality", "Images not good enough to call"),
        Reason("out_of_scope", "Study outside the model's intended use"),
        Reason("other", "Other (see comment)"),
    ),
    Decision.CORRECT: (
        Reason("wrong_location", "Present, wrong location"),
        Reason("wrong_size", "Present, wrong size or volume"),
        Reason("wrong_severity", "Present, wrong severity"),
        Reason("other", "Other (see comment)"),
    ),
}


class FindingNotFound(LookupError):
    """No AI finding has this id."""


class InvalidReview(ValueError):
    """A review that breaks a rule; the message says which."""


@dataclass(frozen=True)
class ReviewInput:
    """What a reviewer submits."""

    decision: Decision
    reason: str
    comment: str = ""
    corrected_location: str = ""
    corrected_volume_ml: float | None = None
    corrected_severity: str = ""


def _check(finding: FindingRow, review: ReviewInput) -> None:
    allowed = {reason.code for reason in REASONS[review.decision]}
    if review.reason not in allowed:
        raise InvalidReview(
            f"reason {review.reason!r} does not fit decision {review.decision.value}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    corrects = (
        review.corrected_location.strip()
        or review.corrected_volume_ml is not None
        or review.corrected_severity
    )
    if review.decision is Decision.CORRECT:
        if not finding.present:
            raise InvalidReview(
                "a negative finding cannot be corrected: reject it as missed_finding instead"
            )
    elif corrects:
        raise InvalidReview("corrected values belong to a 'correct' decision only")
    if review.corrected_severity and review.corrected_severity not in set(Severity):
        raise InvalidReview(
            f"severity {review.corrected_severity!r} is not one of "
            f"{', '.join(s.value for s in Severity)}"
        )
    if review.corrected_volume_ml is not None and not 0 <= review.corrected_volume_ml < 1e6:
        raise InvalidReview("a corrected volume is between 0 and 1,000,000 ml")
    if len(review.comment) > COMMENT_MAX:
        raise InvalidReview(f"a comment holds at most {COMMENT_MAX} characters")
    if len(review.corrected_location) > LOCATION_MAX:
        raise InvalidReview(f"a location holds at most {LOCATION_MAX} characters")


def latest_review_id(*, session: Session, finding_id: int) -> int | None:
    """The id of the finding's latest review, or None when it has none."""
    return session.scalars(
        select(FindingReview.id)
        .where(FindingReview.finding_id == finding_id)
        .order_by(FindingReview.id.desc())
        .limit(1)
    ).first()


def add_review(
    *, session: Session, finding_id: int, reviewer: str, review: ReviewInput, now: datetime
) -> FindingReview:
    """Append a review of the finding, following its latest one.

    Raises
    ------
    FindingNotFound
        When no finding has this id.
    InvalidReview
        When the reason does not fit the decision, or ``correct`` is used on a negative.
    """
    finding = session.get(FindingRow, finding_id)
    if finding is None:
        raise FindingNotFound(f"no AI finding has id {finding_id}")
    _check(finding, review)
    row = FindingReview(
        finding_id=finding_id,
        study_instance_uid=finding.study_instance_uid,
        reviewer=reviewer,
        decision=review.decision.value,
        reason=review.reason,
        comment=review.comment.strip(),
        corrected_location=review.corrected_location.strip(),
        corrected_volume_ml=review.corrected_volume_ml,
        corrected_severity=review.corrected_severity,
        supersedes=latest_review_id(session=session, finding_id=finding_id),
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def history(*, session: Session, finding_id: int) -> list[FindingReview]:
    """Every review of the finding, oldest first."""
    return list(
        session.scalars(
            select(FindingReview)
            .where(FindingReview.finding_id == finding_id)
            .order_by(FindingReview.id)
        )
    )
