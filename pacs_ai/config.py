"""The one place for settings.

Every tunable of pacs-ai is a field of :class:`Settings`, read from the environment with the
prefix ``PACS_AI_`` (``PACS_AI_DIMSE_PORT=104``) or from a ``.env`` file. Nothing else in the
package reads ``os.environ``: a component that needs a value takes it from the ``Settings``
instance the composition root (``server.py``, ``cli.py``) hands it.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

AE_TITLE_MAX = 16
DEVELOPMENT_TOKEN_PEPPER = "pacs-ai-development-only-token-pepper"
TOKEN_PEPPER_MIN = 32
#: Default triage tables (see pacs_ai.triage.score); a setting that names some keys keeps these
#: for the others.
TriageSeverity = Literal["critical", "urgent", "routine"]
TriageOrder = Literal["STAT", "HIGH", "MEDIUM", "ROUTINE", "LOW"]
TriageSetting = Literal["emergency", "inpatient", "outpatient"]
TRIAGE_SEVERITY_WEIGHTS: dict[TriageSeverity, float] = {
    "critical": 1.0,
    "urgent": 0.5,
    "routine": 0.1,
}
TRIAGE_ORDER_WEIGHTS: dict[TriageOrder, float] = {
    "STAT": 1.0,
    "HIGH": 0.5,
    "MEDIUM": 0.25,
    "ROUTINE": 0.1,
    "LOW": 0.0,
}
TRIAGE_SETTING_WEIGHTS: dict[TriageSetting, float] = {
    "emergency": 0.5,
    "inpatient": 0.2,
    "outpatient": 0.0,
}
#: Short labels of the worklist's AI badges for the findings of the bundled models.
WORKLIST_FINDING_LABELS = {"SCT:1386000": "ICH", "SCT:36118008": "PTX"}


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
    max_associations: int = Field(
        default=16, ge=1, description="Concurrent DIMSE associations, per DIMSE process"
    )
    dimse_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Processes serving DIMSE associations on the one port (the main process "
        "hands each new one to the least busy); one per CPU core lets concurrent C-STOREs use "
        "every core",
    )
    acse_timeout_s: float = Field(default=30.0, gt=0)
    dimse_timeout_s: float = Field(default=60.0, gt=0)
    network_timeout_s: float = Field(
        default=60.0, gt=0, description="An association idle this long is aborted"
    )
    ingest_processes: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Worker processes that ingest the parts of a STOW-RS request side by side; "
        "0 ingests in the server process",
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

    auto_register_models: bool = Field(
        default=True,
        description="At start, register bundles found in models_dirs and activate a model's "
        "version when it has none active (a laptop's defaults; turn off where ML engineers "
        "activate versions themselves)",
    )
    pipelines_enabled: bool = Field(
        default=True, description="Run the AI pipelines (stability, routing, jobs, Ray)"
    )
    pipelines_dir: Path = Field(
        default=Path("./pipelines"), description="Folder of pipeline YAML files"
    )
    stable_after_seconds: float = Field(
        default=10.0, ge=0, description="A study with no new instance for this long is stable"
    )
    dispatcher_poll_s: float = Field(default=0.5, gt=0, description="How often jobs are looked for")
    job_lease_s: float = Field(
        default=120.0,
        gt=0,
        description="A running job whose lease is not renewed this long "
        "is taken over (its server died)",
    )
    job_max_attempts: int = Field(default=3, ge=1)
    job_backoff_s: float = Field(default=5.0, ge=0, description="First retry delay, doubling")
    inference_batch_size: int = Field(
        default=4, ge=1, description="Series of one model version sent to an actor in one call"
    )
    inference_timeout_s: float = Field(default=300.0, gt=0)
    inference_actors_per_model: int = Field(
        default=1, ge=1, description="Ray actors (model copies) per model version"
    )
    ray_address: str | None = Field(
        default=None,
        description="Ray cluster to join (e.g. ray://head:10001 or head:6379); "
        "default: an embedded local Ray",
    )
    ray_num_cpus: int | None = Field(
        default=None, ge=1, description="CPUs of the embedded local Ray (default: all)"
    )

    # Triage (pacs_ai.triage.score): score = weight_ai * AI + weight_clinical * clinical
    # + weight_waiting * waiting; defaults tuned with benchmarks/triage.py (benchmarks/README.md).
    triage_weight_ai: float = Field(
        default=1.0, ge=0, description="Weight of the AI part: severity weight x probability"
    )
    triage_weight_clinical: float = Field(
        default=0.5, ge=0, description="Weight of the clinical part: order priority + setting"
    )
    triage_weight_waiting: float = Field(
        default=1.0,
        ge=0,
        description="Weight of the waiting part (share of the SLA used, then lateness; 0 turns "
        "ageing off)",
    )
    triage_overdue_per_hour: float = Field(
        default=2.0,
        gt=0,
        description="Waiting part added per hour past the SLA deadline (it is 1 at the deadline)",
    )
    triage_sla_critical_minutes: float = Field(
        default=15.0, gt=0, description="SLA of a study with a critical AI finding"
    )
    triage_sla_stat_minutes: float = Field(
        default=60.0, gt=0, description="SLA of a STAT order or an emergency patient"
    )
    triage_sla_urgent_minutes: float = Field(
        default=180.0, gt=0, description="SLA of a HIGH order or an urgent AI finding"
    )
    triage_sla_routine_minutes: float = Field(
        default=240.0,
        gt=0,
        description="SLA of any other study; past it a study outranks fresh findings "
        "(raise it, e.g. to 1440, where routine work may wait a day)",
    )
    triage_severity_weights: dict[TriageSeverity, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: dict(TRIAGE_SEVERITY_WEIGHTS),
        description="AI finding severity -> weight (JSON object; keys left out keep defaults)",
    )
    triage_order_weights: dict[TriageOrder, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: dict(TRIAGE_ORDER_WEIGHTS),
        description="Order priority -> weight (JSON object; keys left out keep defaults)",
    )
    triage_setting_weights: dict[TriageSetting, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: dict(TRIAGE_SETTING_WEIGHTS),
        description="Patient setting -> weight (JSON object; keys left out keep defaults)",
    )

    # Reading worklist (pacs_ai.triage.worklist, /api/worklist, the web UI at /ui/).
    worklist_horizon_days: float = Field(
        default=30.0,
        ge=0,
        description="Studies that arrived longer ago are left off the worklist (imported "
        "priors, history); 0 keeps every unread study",
    )
    worklist_refresh_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Longest age of the ranked worklist that requests are answered from; "
        "new findings and studies re-rank it at once",
    )
    worklist_poll_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often new findings and studies are looked for (live page updates)",
    )
    worklist_finding_labels: dict[str, str] = Field(
        default_factory=lambda: dict(WORKLIST_FINDING_LABELS),
        description="Finding code (SCHEME:VALUE) -> short label of the worklist's AI badges "
        "(JSON object); other codes show their code meaning",
    )
    ohif_viewer_url: str | None = Field(
        default=None,
        description="A study in an external DICOMweb viewer, with {study} where the Study "
        "Instance UID goes, e.g. https://ohif.example/viewer?StudyInstanceUIDs={study}",
    )

    # Quality assurance (pacs_ai.qa) and model operations (docs/qa-and-models.md).
    qa_negative_sample_rate: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Share of negative AI findings offered for review at random (the sample "
        "that estimates sensitivity and specificity)",
    )
    qa_drift_threshold: float = Field(
        default=0.10,
        gt=0,
        le=1,
        description="Absolute change of a model version's positive rate that raises a drift alert",
    )
    qa_drift_window_days: float = Field(
        default=7.0, gt=0, description="Recent window compared against the rest of the period"
    )
    qa_drift_min_findings: int = Field(
        default=20, ge=1, description="Findings each side needs before drift can alert"
    )
    replay_max_studies: int = Field(
        default=20, ge=1, le=500, description="Studies one dry-run replay may run a model on"
    )

    @field_validator("worklist_finding_labels", mode="before")
    @classmethod
    def _complete_labels(cls, value: object) -> object:
        return {**WORKLIST_FINDING_LABELS, **value} if isinstance(value, dict) else value

    @field_validator("ohif_viewer_url")
    @classmethod
    def _check_viewer_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("http://", "https://")) or "{study}" not in value:
            raise ValueError("ohif_viewer_url must be an http(s) URL containing {study}")
        return value

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

    @field_validator(
        "triage_severity_weights", "triage_order_weights", "triage_setting_weights", mode="before"
    )
    @classmethod
    def _complete_triage_table(cls, value: object, info: ValidationInfo) -> object:
        defaults: dict[str, dict[Any, float]] = {
            "triage_severity_weights": TRIAGE_SEVERITY_WEIGHTS,
            "triage_order_weights": TRIAGE_ORDER_WEIGHTS,
            "triage_setting_weights": TRIAGE_SETTING_WEIGHTS,
        }
        table = defaults[str(info.field_name)]
        return {**table, **value} if isinstance(value, dict) else value

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
