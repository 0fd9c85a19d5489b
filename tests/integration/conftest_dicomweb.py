"""Fixtures for the HTTP face: a running server per database with a user of each role.

Import what you need into a test module (``from tests.integration.conftest_dicomweb import
live_server``); the server is shared by the tests of one module, once on SQLite and once on
PostgreSQL (a fresh schema in database ``test``, dropped afterwards).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.uid import generate_uid

from pacs_ai.config import Settings
from pacs_ai.security.accounts import add_user
from pacs_ai.security.roles import Role
from pacs_ai.server import Server, create_server
from tests.conftest import POSTGRES_ADMIN_URL, sample_path

ALLOWED_ORIGIN = "http://viewer.example:3000"


@dataclass
class LiveServer:
    """A started server, its URLs, and an API token per role."""

    server: Server
    tokens: dict[Role, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.server.http_port}"

    @property
    def dicomweb(self) -> str:
        """The DICOMweb service root."""
        return f"{self.url}/dicom-web"

    def headers(self, role: Role = Role.ADMIN) -> dict[str, str]:
        """The Authorization header of a user with ``role``."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def client(self, role: Role = Role.ADMIN) -> DICOMwebClient:
        """A dicomweb-client session holding that user's token."""
        session = requests.Session()
        session.headers.update(self.headers(role))
        return DICOMwebClient(self.dicomweb, session=session)

    def flush_audit(self) -> None:
        """Write queued audit entries now."""
        audit = self.server.context.audit
        assert audit is not None
        assert audit.flush()


def _postgres_schema() -> tuple[str, str]:
    schema = f"t_{secrets.token_hex(6)}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return schema, f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}"


def _drop_schema(schema: str) -> None:
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def start_live_server(
    data_dir: Path, database_url: str | None, origins: tuple[str, ...] = (ALLOWED_ORIGIN,)
) -> LiveServer:
    """Start a server on ephemeral ports with one user per role, CORS open to ``origins``."""
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        dimse_port=0,
        http_port=0,
        cors_allowed_origins=list(origins),
        pipelines_enabled=False,
    )
    server = create_server(settings)
    server.start()
    live = LiveServer(server)
    for role in Role:
        live.tokens[role] = add_user(
            database=server.context.database,
            settings=settings,
            username=f"{role.value}-user",
            role=role,
        )
    return live


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A server shared by a module's tests, on each database in turn."""
    schema = None
    url = None
    if request.param == "postgresql":
        schema, url = _postgres_schema()
    live = start_live_server(tmp_path_factory.mktemp("pacs"), url)
    try:
        yield live
    finally:
        live.server.stop()
        if schema is not None:
            _drop_schema(schema)


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server on SQLite only, for tests whose subject is not the database."""
    live = start_live_server(tmp_path_factory.mktemp("pacs"), None)
    try:
        yield live
    finally:
        live.server.stop()


def with_new_uids(
    name: str,
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    **attributes: object,
) -> bytes:
    """A bundled pydicom file as Part 10 bytes with fresh (or given) UIDs."""
    ds = dcmread(sample_path(name))
    sop_uid = generate_uid()
    ds.SOPInstanceUID = sop_uid
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def multipart_body(parts: list[bytes], part_type: str = "application/dicom") -> tuple[bytes, str]:
    """A multipart/related body of ``parts`` and its Content-Type."""
    boundary = uuid.uuid4().hex
    body = b"".join(
        b"--"
        + boundary.encode()
        + b"\r\nContent-Type: "
        + part_type.encode()
        + b"\r\n\r\n"
        + part
        + b"\r\n"
        for part in parts
    )
    body += b"--" + boundary.encode() + b"--\r\n"
    return body, f'multipart/related; type="{part_type}"; boundary={boundary}'


def split_multipart(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart response: headers and content."""
    boundary = content_type.split("boundary=")[1].split(";")[0].strip('"')
    pieces = body.split(b"--" + boundary.encode())
    assert pieces[-1].strip() == b"--", "the body must end with the close delimiter"
    parts = []
    for piece in pieces[1:-1]:
        head, _, content = piece.partition(b"\r\n\r\n")
        headers = {}
        for line in head.strip().split(b"\r\n"):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        assert content.endswith(b"\r\n")
        parts.append((headers, content[:-2]))
    return parts
