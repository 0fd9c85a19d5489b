"""A finding's key image as an HTTP answer, for the worklist's study page and QA review alike."""

from __future__ import annotations

from fastapi.responses import Response
from pydicom.errors import InvalidDicomError
from sqlalchemy.orm import Session

from pacs_ai.api.errors import ApiError
from pacs_ai.archive.storage import Storage, StorageError
from pacs_ai.triage.worklist import StoredFinding
from pacs_ai.triage.worklist_dicom import key_image, render_key_image


def key_image_response(*, session: Session, storage: Storage, finding: StoredFinding) -> Response:
    """The PNG of the image that best shows ``finding``, its segmentation filled and outlined.

    404 when no stored image shows it; 422 when its stored results cannot be read (a damaged
    SEG must not turn into a server error on a reading or review page).
    """
    try:
        located = key_image(session=session, storage=storage, finding=finding)
        if located is None:
            raise ApiError(404, f"no stored image shows finding {finding.id}")
        key, mask = located
        png = render_key_image(session=session, storage=storage, key=key, mask=mask)
    except (StorageError, InvalidDicomError, ValueError) as exc:
        raise ApiError(
            422, f"the stored results of finding {finding.id} cannot be read: {exc}"
        ) from exc
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=60"})
