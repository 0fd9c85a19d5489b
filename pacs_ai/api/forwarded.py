"""Who is calling and which URL they called, behind a reverse proxy or not.

URLs that pacs-ai puts in its answers (QIDO-RS ``RetrieveURL``, WADO-RS ``BulkDataURI``,
STOW-RS ``RetrieveURL``, PS3.18 8.3.5) must be the ones the client used, never an internal host
name. A proxy tells them in ``X-Forwarded-Proto``, ``X-Forwarded-Host`` and
``X-Forwarded-Prefix``, and the client's address in ``X-Forwarded-For``; those headers are
believed only from the peers listed in ``Settings.forwarded_allow_ips`` (as uvicorn's
``forwarded_allow_ips``), since anyone else could forge them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from starlette.requests import Request

_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
_PREFIX = re.compile(r"^(/[A-Za-z0-9._~\-]+)*/?$")


def _first(value: str | None) -> str:
    return value.split(",")[0].strip() if value else ""


def trusted_peer(request: Request, trusted: Sequence[str]) -> bool:
    """True when the direct peer is a proxy whose forwarding headers are believed."""
    peer = request.client.host if request.client else ""
    return "*" in trusted or peer in trusted


def client_address(request: Request, trusted: Sequence[str]) -> str:
    """The caller's address: the proxy's ``X-Forwarded-For`` if trusted, else the peer's."""
    peer = request.client.host if request.client else ""
    if trusted_peer(request, trusted):
        forwarded = _first(request.headers.get("x-forwarded-for"))
        if forwarded:
            return forwarded[:64]
    return peer


def public_base_url(request: Request, trusted: Sequence[str]) -> str:
    """``scheme://host[:port][/prefix]`` as the client sees this server, without a final slash.

    Malformed forwarded values (a host with a path, a prefix with odd characters) are ignored
    rather than echoed into answers.
    """
    scheme = request.url.scheme
    host = request.headers.get("host", "") or request.url.netloc
    prefix = request.scope.get("root_path", "")
    if trusted_peer(request, trusted):
        proto = _first(request.headers.get("x-forwarded-proto")).lower()
        if proto in ("http", "https"):
            scheme = proto
        forwarded_host = _first(request.headers.get("x-forwarded-host"))
        if forwarded_host and _HOST.fullmatch(forwarded_host):
            host = forwarded_host
        forwarded_prefix = _first(request.headers.get("x-forwarded-prefix"))
        if forwarded_prefix and _PREFIX.fullmatch(forwarded_prefix):
            prefix = forwarded_prefix
    if not _HOST.fullmatch(host):
        host = request.url.netloc
    host = _with_port(request, scheme, host)
    return f"{scheme}://{host}{prefix.rstrip('/')}"


def _with_port(request: Request, scheme: str, host: str) -> str:
    """Add the listening port to a Host header that lacks it, when no proxy is involved.

    Some clients (dicomweb-client among them) send ``Host`` without the port even on a
    non-default one, against RFC 9110 7.2; URLs built from it would point to port 80.
    """
    if host.endswith("]") or ":" in host.rsplit("]", 1)[-1]:
        return host
    if any(h.startswith("x-forwarded-") for h in request.headers):
        return host
    server = request.scope.get("server")
    port = server[1] if server and len(server) > 1 and server[1] else None
    if port is None or port == {"http": 80, "https": 443}.get(scheme):
        return host
    return f"{host}:{port}"
