"""Bearer tokens: random, shown once, stored as a keyed digest.

A token is 32 random bytes (``secrets.token_urlsafe``), so a fast digest is enough to store it:
unlike a password it cannot be guessed, and a slow hash (argon2) would only slow every request.
The digest is an HMAC-SHA256 keyed with ``Settings.token_pepper``: a copy of the database alone
does not even let one check a stolen token, and changing the pepper revokes every token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import StrEnum

TOKEN_PREFIX = "pacs_"
"""Marks our tokens, so that secret scanners and people recognise a leaked one."""

TOKEN_BYTES = 32


class TokenKind(StrEnum):
    """``api`` tokens are for machines and scripts; ``session`` tokens come from a web login."""

    API = "api"
    SESSION = "session"


def new_token() -> str:
    """A fresh random token (the only time its clear text exists)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str, pepper: str) -> str:
    """The stored form of a token: HMAC-SHA256 under the server's pepper, hex."""
    return hmac.new(pepper.encode("utf-8"), token.encode("utf-8"), hashlib.sha256).hexdigest()
