"""A newcomer's first minute: demo users and synthetic studies sent through the real DIMSE port.

``pacs-ai serve --demo`` (what ``make serve`` runs) creates one user per role with a random
password, prints the credentials once, and C-STOREs a handful of synthetic studies to the
server it just started, so that the worklist fills and re-ranks as the models' results
arrive. Refused in production: no default account ever ships there.
"""

from __future__ import annotations

import logging
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pacs_ai.config import Settings
from pacs_ai.dimse.context import DimseContext
from pacs_ai.dimse.scu import send_files
from pacs_ai.security.accounts import add_user
from pacs_ai.security.roles import Role
from pacs_ai.security.users import UserError
from pacs_ai.synth import generate_batch, write_study

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoUser:
    """A user made for the demo; the password is shown once and stored only as a hash."""

    username: str
    role: Role
    password: str


def create_demo_users(context: DimseContext) -> list[DemoUser]:
    """One user per role (``demo-<role>``); users that exist already are left alone."""
    if context.settings.environment == "production":
        raise ValueError("demo users are refused in production")
    created = []
    for role in Role:
        username = f"demo-{role.value}".replace("_", "-")
        password = secrets.token_urlsafe(12)
        try:
            add_user(
                database=context.database,
                settings=context.settings,
                username=username,
                role=role,
                password=password,
            )
        except UserError:
            continue
        created.append(DemoUser(username, role, password))
    return created


def send_demo_studies(settings: Settings, port: int, *, seed: int = 2026) -> int:
    """Generate CT heads and chest radiographs (half with a finding) and C-STORE them."""
    sent = 0
    with tempfile.TemporaryDirectory(prefix="pacs-ai-demo-") as folder:
        for index, study in enumerate(
            generate_batch(seed, ct_head=4, cxr=4, positive_share=0.5, slices=32, ct_size=256)
        ):
            files = [p for p in write_study(study, Path(folder) / str(index)) if p.suffix == ".dcm"]
            report = send_files(
                files, "127.0.0.1", port, called_ae=settings.ae_title, calling_ae="DEMO-MODALITY"
            )
            sent += len(report.sent)
            for path, reason in report.failed.items():
                log.warning("demo object %s not stored: %s", path.name, reason)
    return sent
