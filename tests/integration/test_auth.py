"""Users, roles, tokens and the audit trail, against a running server."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pydicom
import pytest

from pacs_ai.api.deps import Policy, route_policies
from pacs_ai.archive.schema import utcnow
from pacs_ai.security import users
from pacs_ai.security.accounts import add_user
from pacs_ai.security.roles import Role
from pacs_ai.security.tokens import TokenKind
from tests.integration.conftest import run_dcmtk, storescu
from tests.integration.conftest_dicomweb import (
    ALLOWED_ORIGIN,
    LiveServer,
    multipart_body,
    sqlite_server,
    with_new_uids,
)

pytestmark = pytest.mark.integration
__all__ = ["sqlite_server"]


@pytest.fixture(scope="module")
def stored(sqlite_server: LiveServer) -> pydicom.Dataset:
    """One CT in the archive, so that retrieve routes have something to answer with."""
    data = with_new_uids("CT_small.dcm", PatientID="AUTH-PATIENT")
    sqlite_server.server.context.ingestor.ingest(data)
    return pydicom.dcmread(io.BytesIO(data))


def _concrete(path: str, ds: pydicom.Dataset) -> str:
    return (
        path.replace("{study}", str(ds.StudyInstanceUID))
        .replace("{series}", str(ds.SeriesInstanceUID))
        .replace("{instance}", str(ds.SOPInstanceUID))
        .replace("{frames}", "1")
        .replace("{frame}", "1")
        .replace("{path:path}", "7FE00010")
        .replace("{finding_id}", "999999")  # no such finding: 404 once the role is admitted
        .replace("{name}", "no-such-model")
        .replace("{version}", "1.0.0")  # no such model version: 404 likewise
    )


def _request(client: httpx.Client, method: str, url: str, headers: dict[str, str]) -> int:
    """The status of a request; an event stream is opened, its status read, and closed."""
    if url.endswith("/events"):
        with client.stream(
            method, url, headers={**headers, "Accept": "text/event-stream"}
        ) as response:
            return response.status_code
    return client.request(method, url, headers=headers).status_code


def _routes(live: LiveServer) -> Iterator[tuple[str, str, Policy]]:
    app = live.server.http.server.config.app  # type: ignore[union-attr]
    for path, route, policy in route_policies(app.routes):
        assert policy is not None
        for method in sorted(getattr(route, "methods", set()) - {"HEAD"}):
            yield method, path, policy


def _session_token(live: LiveServer, role: Role) -> str:
    database = live.server.context.database
    settings = live.server.context.settings
    with database.write_sessions.begin() as session:
        user = users.get_by_username_or_raise(session=session, username=f"{role.value}-user")
        token, _row = users.issue_token(
            session=session,
            user=user,
            kind=TokenKind.SESSION,
            ttl=timedelta(hours=1),
            pepper=settings.token_pepper.get_secret_value(),
        )
    return token


def test_every_role_against_every_route(sqlite_server: LiveServer, stored: pydicom.Dataset) -> None:
    checked = 0
    with httpx.Client(base_url=sqlite_server.url, timeout=30) as client:
        for method, path, policy in _routes(sqlite_server):
            url = _concrete(path, stored)
            anonymous = client.request(method, url)
            if policy.roles is None:
                assert anonymous.status_code not in (401, 403), (method, path)
                continue
            assert anonymous.status_code == 401, (method, path)
            assert anonymous.headers["www-authenticate"] == "Bearer"
            expected_get = 404 if "{finding_id}" in path or "{version}" in path else 200
            for role in Role:
                token = (
                    _session_token(sqlite_server, role)
                    if path.endswith("/logout")
                    else sqlite_server.tokens[role]
                )
                status = _request(client, method, url, {"Authorization": f"Bearer {token}"})
                if role in policy.roles:
                    assert status not in (401, 403), (method, path, role)
                    if method == "GET":
                        assert status == expected_get, (method, path, role)
                else:
                    assert status == 403, (method, path, role)
                checked += 1
    assert checked >= 4 * 25


def test_the_declared_policies(sqlite_server: LiveServer) -> None:
    policies = {(m, p): pol for m, p, pol in _routes(sqlite_server)}
    everyone = set(Role)
    assert policies[("GET", "/dicom-web/studies")].roles == everyone
    assert policies[("GET", "/dicom-web/studies/{study}")].roles == everyone
    assert policies[("POST", "/dicom-web/studies")].roles == {Role.ADMIN, Role.ML_ENGINEER}
    assert policies[("GET", "/api/audit")].roles == {Role.ADMIN}
    assert policies[("GET", "/api/audit/export")].roles == {Role.ADMIN}
    assert policies[("GET", "/healthz")].roles is None
    assert policies[("POST", "/api/auth/login")].roles is None


@pytest.mark.parametrize(
    "header",
    ["Bearer pacs_not-a-real-token", "Bearer", "Basic dXNlcjpwYXNz", "pacs_just-the-token"],
)
def test_wrong_tokens_are_401(sqlite_server: LiveServer, header: str) -> None:
    answer = httpx.get(f"{sqlite_server.dicomweb}/studies", headers={"Authorization": header})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.json()["error"]


def test_expired_and_revoked_tokens_are_401(sqlite_server: LiveServer) -> None:
    context = sqlite_server.server.context
    pepper = context.settings.token_pepper.get_secret_value()
    with context.database.write_sessions.begin() as session:
        user = users.get_by_username_or_raise(session=session, username="qa-user")
        expired, _ = users.issue_token(
            session=session,
            user=user,
            kind=TokenKind.API,
            ttl=timedelta(hours=1),
            pepper=pepper,
            now=utcnow() - timedelta(hours=2),
        )
        revoked, _ = users.issue_token(
            session=session, user=user, kind=TokenKind.API, ttl=timedelta(hours=1), pepper=pepper
        )
    url = f"{sqlite_server.dicomweb}/studies"
    assert httpx.get(url, headers={"Authorization": f"Bearer {revoked}"}).status_code == 200
    with context.database.write_sessions.begin() as session:
        assert users.revoke_token(session=session, token=revoked, pepper=pepper)
    assert httpx.get(url, headers={"Authorization": f"Bearer {expired}"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {revoked}"}).status_code == 401


def test_login_me_logout(sqlite_server: LiveServer) -> None:
    context = sqlite_server.server.context
    add_user(
        database=context.database,
        settings=context.settings,
        username="dr.who",
        role=Role.RADIOLOGIST,
        password="correct horse battery staple",
    )
    with httpx.Client(base_url=sqlite_server.url) as client:
        wrong = client.post("/api/auth/login", json={"username": "dr.who", "password": "nope"})
        nobody = client.post("/api/auth/login", json={"username": "ghost", "password": "x"})
        ok = client.post(
            "/api/auth/login",
            json={"username": "dr.who", "password": "correct horse battery staple"},
        )
        token = ok.json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        me = client.get("/api/auth/me", headers=bearer)
        search = client.get("/dicom-web/studies", headers=bearer)
        logout = client.post("/api/auth/logout", headers=bearer)
        after = client.get("/dicom-web/studies", headers=bearer)
    assert wrong.status_code == nobody.status_code == 401
    assert ok.status_code == 200
    assert ok.json()["role"] == "radiologist"
    assert me.json() == {"username": "dr.who", "role": "radiologist"}
    assert search.status_code == 200
    assert logout.status_code == 204
    assert after.status_code == 401
    sqlite_server.flush_audit()
    trail = httpx.get(
        f"{sqlite_server.url}/api/audit",
        params={"action": "failed_login"},
        headers=sqlite_server.headers(),
    ).json()["items"]
    assert any("dr.who" in item["detail"] for item in trail)
    assert any("ghost" in item["detail"] for item in trail)


def test_accesses_are_audited_with_who_what_where(
    sqlite_server: LiveServer, stored: pydicom.Dataset
) -> None:
    study = str(stored.StudyInstanceUID)
    radiologist = sqlite_server.headers(Role.RADIOLOGIST)
    httpx.get(
        f"{sqlite_server.dicomweb}/studies",
        params={"PatientID": "AUTH-PATIENT"},
        headers=radiologist,
    )
    httpx.get(f"{sqlite_server.dicomweb}/studies/{study}/metadata", headers=radiologist)
    body, content_type = multipart_body([with_new_uids("MR_small.dcm", PatientID="AUDIT-STOW")])
    httpx.post(
        f"{sqlite_server.dicomweb}/studies",
        content=body,
        headers={**radiologist, "Content-Type": content_type},
    )
    httpx.post(
        f"{sqlite_server.dicomweb}/studies",
        content=body,
        headers={**sqlite_server.headers(Role.ML_ENGINEER), "Content-Type": content_type},
    )
    httpx.get(f"{sqlite_server.dicomweb}/studies", headers={"Authorization": "Bearer wrong"})
    sqlite_server.flush_audit()
    admin = sqlite_server.headers()
    mine = httpx.get(
        f"{sqlite_server.url}/api/audit",
        params={"actor": "radiologist-user", "limit": 50},
        headers=admin,
    ).json()["items"]
    actions = {(i["action"], i["outcome"]) for i in mine}
    assert ("query", "success") in actions
    assert ("retrieve", "success") in actions
    assert ("store", "denied") in actions
    query = next(i for i in mine if i["action"] == "query" and i["patient_id"] == "AUTH-PATIENT")
    assert query["study_uids"] == [study]
    assert query["source"] == "127.0.0.1"
    assert query["protocol"] == "http"
    assert query["role"] == "radiologist"
    by_study = httpx.get(
        f"{sqlite_server.url}/api/audit", params={"study_uid": study}, headers=admin
    ).json()["items"]
    assert {i["action"] for i in by_study} >= {"query", "retrieve"}
    stored_entry = httpx.get(
        f"{sqlite_server.url}/api/audit",
        params={"patient_id": "AUDIT-STOW", "action": "store"},
        headers=admin,
    ).json()["items"]
    assert [i["actor"] for i in stored_entry] == ["ml_engineer-user"]
    failed = httpx.get(
        f"{sqlite_server.url}/api/audit", params={"action": "failed_login"}, headers=admin
    ).json()["items"]
    assert any("invalid or expired token" in i["detail"] for i in failed)


def test_audit_paging_and_export(sqlite_server: LiveServer) -> None:
    for _ in range(3):
        httpx.get(f"{sqlite_server.url}/api/auth/me", headers=sqlite_server.headers(Role.QA))
    sqlite_server.flush_audit()
    admin = sqlite_server.headers()
    first = httpx.get(f"{sqlite_server.url}/api/audit", params={"limit": 2}, headers=admin).json()
    second = httpx.get(
        f"{sqlite_server.url}/api/audit",
        params={"limit": 2, "before_id": first["next_before_id"]},
        headers=admin,
    ).json()
    assert len(first["items"]) == 2
    assert first["next_offset"] == 2
    assert first["items"][0]["id"] > first["items"][1]["id"] > second["items"][0]["id"]
    export = httpx.get(f"{sqlite_server.url}/api/audit/export", headers=admin)
    assert export.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in export.text.splitlines()]
    assert len(lines) >= 4
    assert [e["id"] for e in lines] == sorted(e["id"] for e in lines)
    bad = httpx.get(f"{sqlite_server.url}/api/audit", params={"limit": 0}, headers=admin)
    assert bad.status_code == 400
    assert (
        httpx.get(
            f"{sqlite_server.url}/api/audit", params={"action": "nap"}, headers=admin
        ).status_code
        == 400
    )


def test_dimse_operations_are_audited(sqlite_server: LiveServer, tmp_path: Path) -> None:
    data = with_new_uids("CT_small.dcm", PatientID="DIMSE-AUDIT")
    sent = tmp_path / "ct.dcm"
    sent.write_bytes(data)
    port = sqlite_server.server.dimse_port
    assert all(r.returncode == 0 for r in storescu(port, [sent], "-aet", "MODALITY1"))
    found = run_dcmtk(
        "findscu",
        "-aet",
        "VIEWER1",
        "-S",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "PatientID=DIMSE-AUDIT",
        "-k",
        "StudyInstanceUID",
        "127.0.0.1",
        str(port),
    )
    assert found.returncode == 0, found.stderr
    sqlite_server.flush_audit()
    trail = httpx.get(
        f"{sqlite_server.url}/api/audit",
        params={"protocol": "dimse", "patient_id": "DIMSE-AUDIT"},
        headers=sqlite_server.headers(),
    ).json()["items"]
    study = str(pydicom.dcmread(io.BytesIO(data)).StudyInstanceUID)
    by_actor = {i["actor"]: i for i in trail}
    assert by_actor["MODALITY1"]["action"] == "store"
    assert by_actor["MODALITY1"]["study_uids"] == [study]
    assert by_actor["VIEWER1"]["action"] == "query"
    assert study in by_actor["VIEWER1"]["study_uids"]
    assert by_actor["VIEWER1"]["source"] == "127.0.0.1"


def test_cli_users_add_prints_the_token_last(sqlite_server: LiveServer) -> None:
    env = {
        **os.environ,
        "PACS_AI_DATA_DIR": str(sqlite_server.server.context.settings.data_dir),
        "PACS_AI_LOG_LEVEL": "WARNING",
    }
    cli = [str(Path(sys.executable).parent / "pacs-ai")]
    added = subprocess.run(
        [*cli, "users", "add", "scripted", "--role", "qa"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    answer = httpx.get(
        f"{sqlite_server.dicomweb}/studies", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200
    listed = subprocess.run(
        [*cli, "users", "list"], capture_output=True, text=True, env=env, check=False, timeout=120
    )
    assert "scripted" in listed.stdout and "qa" in listed.stdout


def test_health_ready_metrics(sqlite_server: LiveServer) -> None:
    base = sqlite_server.url
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "storage": "ok"}
    assert httpx.get(f"{base}/metrics").status_code == 401
    assert httpx.get(f"{base}/metrics", headers=sqlite_server.headers(Role.QA)).status_code == 403
    text = httpx.get(f"{base}/metrics", headers=sqlite_server.headers(Role.ML_ENGINEER)).text
    assert 'pacs_ai_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert "pacs_ai_archive_instances" in text
    assert 'pacs_ai_dimse_associations_active{process="0"} 0.0' in text


def test_cors_preflight_needs_no_token_and_refusals_carry_cors(sqlite_server: LiveServer) -> None:
    url = f"{sqlite_server.dicomweb}/studies"
    preflight = httpx.options(
        url,
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    foreign = httpx.options(
        url,
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
    )
    unauthorised = httpx.get(url, headers={"Origin": ALLOWED_ORIGIN})
    allowed = httpx.get(url, headers={"Origin": ALLOWED_ORIGIN, **sqlite_server.headers()})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert foreign.status_code == 400
    assert "access-control-allow-origin" not in foreign.headers
    assert unauthorised.status_code == 401
    assert unauthorised.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "warning" in allowed.headers["access-control-expose-headers"].lower()
