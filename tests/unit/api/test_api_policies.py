"""Every route declares who may call it; URLs follow trusted proxies only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter
from starlette.requests import Request

from pacs_ai.api.app import create_app
from pacs_ai.api.deps import route_policies
from pacs_ai.api.forwarded import client_address, public_base_url
from pacs_ai.config import Settings
from pacs_ai.dimse.context import DimseContext
from pacs_ai.server import build_context


@pytest.fixture
def context(tmp_path: Path) -> Iterator[DimseContext]:
    built = build_context(Settings(data_dir=tmp_path, dimse_port=0, http_port=0))
    yield built
    built.database.dispose()


def test_every_route_declares_a_policy(context: DimseContext) -> None:
    app = create_app(context)
    listed = route_policies(app.routes)
    assert len(listed) >= 25
    undeclared = [path for path, _route, policy in listed if policy is None]
    assert undeclared == []
    public = sorted(path for path, _route, policy in listed if policy and policy.roles is None)
    assert public == ["/api/auth/login", "/healthz", "/readyz"]


def test_an_app_with_an_undeclared_route_is_refused(context: DimseContext) -> None:
    from pacs_ai.api.routes import ops

    sneaky = APIRouter()

    @sneaky.get("/open-door")
    def open_door() -> dict[str, str]:
        return {}

    ops.router.include_router(sneaky)
    try:
        with pytest.raises(RuntimeError, match="/open-door"):
            create_app(context)
    finally:
        ops.router.routes.pop()


def _request(headers: dict[str, str], client: str = "10.0.0.5") -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "scheme": "http",
            "server": ("127.0.0.1", 8080),
            "client": (client, 40000),
            "root_path": "",
            "query_string": b"",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        }
    )


def test_forwarded_headers_only_from_trusted_proxies() -> None:
    forwarded = {
        "host": "internal:8080",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "pacs.example.org",
        "x-forwarded-prefix": "/pacs",
        "x-forwarded-for": "203.0.113.9, 10.0.0.5",
    }
    trusted = _request(forwarded)
    assert public_base_url(trusted, ["10.0.0.5"]) == "https://pacs.example.org/pacs"
    assert client_address(trusted, ["10.0.0.5"]) == "203.0.113.9"
    assert public_base_url(trusted, ["127.0.0.1"]) == "http://internal:8080"
    assert client_address(trusted, ["127.0.0.1"]) == "10.0.0.5"
    assert public_base_url(trusted, ["*"]) == "https://pacs.example.org/pacs"


def test_host_without_port_gets_the_listening_port() -> None:
    assert public_base_url(_request({"host": "127.0.0.1"}), []) == "http://127.0.0.1:8080"
    assert public_base_url(_request({"host": "[::1]:9"}), []) == "http://[::1]:9"
