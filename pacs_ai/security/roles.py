"""The roles of pacs-ai and the groups of them that the routes allow.

Each route names the roles it admits next to its declaration (:mod:`pacs_ai.api.deps`);
these groups keep those declarations short and the same where the same data is at stake.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a user is for; one role per user keeps a review of access simple."""

    RADIOLOGIST = "radiologist"
    QA = "qa"
    ML_ENGINEER = "ml_engineer"
    ADMIN = "admin"


ALL_ROLES: frozenset[Role] = frozenset(Role)
"""Everyone with an account: reading images (QIDO-RS, WADO-RS) is the common ground."""

STORE_ROLES: frozenset[Role] = frozenset({Role.ADMIN, Role.ML_ENGINEER})
"""Who may add objects over STOW-RS: migrations (admin) and model work (ml_engineer).

Radiologists and QA read; pacs-ai's own results enter through the ingest path in-process, not
over HTTP, so they need no web role.
"""

ADMIN_ONLY: frozenset[Role] = frozenset({Role.ADMIN})
"""The audit trail and the server's own operations."""

METRICS_ROLES: frozenset[Role] = frozenset({Role.ADMIN, Role.ML_ENGINEER})
"""Operational metrics hold no patient data; engineers watching throughput may read them."""
