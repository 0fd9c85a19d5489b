"""The one place for settings.

Every tunable of pacs-ai is a field of :class:`Settings`, read from the environment with the
prefix ``PACS_AI_`` (``PACS_AI_DIMSE_PORT=104``) or from a ``.env`` file. Nothing else in the
package reads ``os.environ``: a component that needs a value takes it from the ``Settings``
instance the composition root (``server.py``, ``cli.py``) hands it.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

AE_TITLE_MAX = 16
DEVELOPMENT_TOKEN_PEPPER = "pacs-ai-development-only-token-pepper"
TOKEN_PEPPER_MIN = 32


def valid_ae_title(value: str) -> str:
    """AE titles are at most 16 characters of the default repertoire, no backslash (PS3.5 6.2)."""
    stripped = value.strip()
    if (
        not stripped
        or len(stripped) > AE_TITLE_MAX
        or "\\" in stripped
        or not stripped.isprintable()
    ):
        raise ValueError(f"invalid AE title {value!r}: 1-16 printable characters, no backslash")
    return stripped


class Settings(BaseSettings):
    """Settings of a pacs-ai server; defaults run on one laptop with nothing else installed."""

    model_config = SettingsConfigDict(env_prefix="PACS_AI_", env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"
    log_level: str = "INFO"

    data_dir: Path = Path("./pacs-data")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default: SQLite file index.sqlite in data_dir (WAL mode). "
        "PostgreSQL: postgresql+psycopg://user@host/db",
    )

    ae_title: str = "PACSAI"
    dimse_host: str = Field(
        default="127.0.0.1", description="Address the DIMSE SCP binds; 0.0.0.0 for modalities"
    )
    dimse_port: int = Field(default=11112, ge=0, le=65535)
    allowed_calling_aets: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated calling AE titles allowed to associate; empty allows any",
    )
    max_associations: int = Field(default=16, ge=1)
    acse_timeout_s: float = Field(default=30.0, gt=0)
    dimse_timeout_s: float = Field(default=60.0, gt=0)
    network_timeout_s: float = Field(
        default=60.0, gt=0, description="An association idle this long is aborted"
    )
    dimse_poll_interval_s: float = Field(
        default=0.0002,
        gt=0,
        le=0.01,
        description="How long an association's network thread sleeps when it has nothing to "
        "do; pynetdicom's 1 ms default caps one association at ~300 objects/s",
    )
    max_pdu_bytes: int = Field(default=262_144, ge=4096, description="Largest PDU we receive")
    max_object_bytes: int = Field(
        default=2 * 1024**3, ge=1024, description="Largest single DICOM object accepted"
    )
    max_find_results: int = Field(default=10_000, ge=1)

    overwrite: bool = Field(
        default=False,
        description="Same SOP Instance UID with other content: replace (true) or refuse (false)",
    )

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    cors_allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated browser origins (https://viewer.example) allowed to call "
        "the HTTP API cross-origin, e.g. an OHIF viewer; '*' allows any; empty allows none",
    )
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="Comma-separated peer addresses whose X-Forwarded-Proto/Host/Prefix/For "
        "headers are trusted (a reverse proxy); '*' trusts any",
    )
    max_request_bytes: int = Field(
        default=1024**3, ge=1024, description="Largest STOW-RS request body accepted"
    )
    token_ttl_hours: float = Field(
        default=24 * 90, gt=0, description="Lifetime of API tokens for machines"
    )
    session_ttl_hours: float = Field(
        default=12, gt=0, description="Lifetime of the token a web login returns"
    )
    token_pepper: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_TOKEN_PEPPER),
        description="Server-side key mixed into stored token digests (HMAC-SHA256); changing "
        "it revokes every token. Production refuses the default and keys under 32 characters",
    )
    metrics_public: bool = Field(
        default=False,
        description="Serve /metrics without a token (for a scraper on a private network)",
    )
    models_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=lambda: [Path("./models")],
        description="Comma-separated folders searched for MONAI bundles (the model registry); "
        "their configs run as code when validated or registered, so list trusted folders only",
    )

    @field_validator("ae_title")
    @classmethod
    def _check_ae_title(cls, value: str) -> str:
        return valid_ae_title(value)

    @field_validator(
        "allowed_calling_aets",
        "cors_allowed_origins",
        "forwarded_allow_ips",
        "models_dirs",
        mode="before",
    )
    @classmethod
    def _split_aets(cls, value: object) -> object:
        if isinstance(value, str):
            return [part for part in (p.strip() for p in value.split(",")) if part]
        return value

    @field_validator("allowed_calling_aets")
    @classmethod
    def _check_aets(cls, value: list[str]) -> list[str]:
        return [valid_ae_title(v) for v in value]

    @model_validator(mode="after")
    def _check_production(self) -> Settings:
        if self.environment == "production" and self.database_url is None:
            raise ValueError("production needs an explicit PACS_AI_DATABASE_URL")
        pepper = self.token_pepper.get_secret_value()
        if self.environment == "production" and (
            pepper == DEVELOPMENT_TOKEN_PEPPER or len(pepper) < TOKEN_PEPPER_MIN
        ):
            raise ValueError(
                f"production needs PACS_AI_TOKEN_PEPPER: a secret of at least {TOKEN_PEPPER_MIN} "
                "characters, not the development default"
            )
        return self

    @cached_property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite index inside the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'index.sqlite').resolve()}"

    @property
    def storage_dir(self) -> Path:
        """Where DICOM objects live; beside the index so one folder holds the whole archive."""
        return self.data_dir / "objects"
