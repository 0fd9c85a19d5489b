"""Pipelines as data: one YAML file each in ``pipelines/``, validated here.

Series selection rules are keyed by DICOM keyword and take a plain value, a list (any of), a
``regex``, or a numeric ``min``/``max``, as the MONAI Deploy SDK's
``DICOMSeriesSelectorOperator`` takes them. ``slices`` bounds the number of instances.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class PipelineError(ValueError):
    """A pipeline file that cannot be used; the message names the file and the field."""


class Output(StrEnum):
    """What a pipeline writes back into the archive."""

    SR = "sr"
    SEG = "seg"


class Severity(StrEnum):
    """How much a positive finding should move a study up the worklist."""

    CRITICAL = "critical"
    URGENT = "urgent"
    ROUTINE = "routine"


class Rule(BaseModel):
    """A condition on one attribute: any of ``values``, a ``regex``, or a ``min``/``max`` range."""

    model_config = ConfigDict(extra="forbid")

    values: list[str] | None = None
    regex: str | None = None
    min: float | None = None
    max: float | None = None

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Rule:
        if self.values is None and self.regex is None and self.min is None and self.max is None:
            raise ValueError("a rule needs values, regex, min or max")
        return self

    def matches(self, value: Any) -> bool:
        """Whether an attribute value (string, number, or None when absent) passes the rule."""
        if value is None:
            return False
        text = str(value).strip()
        if self.values is not None and text not in self.values:
            return False
        if self.regex is not None and re.search(self.regex, text) is None:
            return False
        if self.min is not None or self.max is not None:
            try:
                number = float(text)
            except ValueError:
                return False
            if self.min is not None and number < self.min:
                return False
            if self.max is not None and number > self.max:
                return False
        return True


def _as_rule(value: Any) -> Any:
    """``Modality: CT`` and ``Modality: [CT, MR]`` are shorthands for ``values``."""
    if isinstance(value, (str, int, float)):
        return {"values": [str(value)]}
    if isinstance(value, list):
        return {"values": [str(v) for v in value]}
    return value


class TriageMapping(BaseModel):
    """How one finding code moves the worklist: severity, and the probability that counts."""

    model_config = ConfigDict(extra="forbid")

    severity: Severity
    threshold: float = Field(ge=0.0, le=1.0)


class Pipeline(BaseModel):
    """One pipeline file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    version: int = Field(ge=1)
    description: str = ""
    urgent: bool = Field(default=False, description="its jobs go before routine ones")
    match: dict[str, Annotated[Rule, Field()]]
    slices: Rule | None = None
    complete_at_instances: int | None = Field(
        default=None,
        ge=1,
        description="a matching series with this many instances makes the study complete at "
        "once, without waiting for it to be stable",
    )
    select: Literal["most_instances", "latest"] = "most_instances"
    model: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*@([A-Za-z0-9.+_-]+)$")
    outputs: list[Output] = Field(min_length=1)
    forward_to: list[str] = Field(default_factory=list, description="AE titles of known nodes")
    triage: dict[str, TriageMapping] = Field(
        default_factory=dict, description="finding code (SCHEME:VALUE) -> severity, threshold"
    )

    @field_validator("match", mode="before")
    @classmethod
    def _shorthands(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: _as_rule(rule) for key, rule in value.items()}
        return value

    @field_validator("slices", mode="before")
    @classmethod
    def _slices_shorthand(cls, value: Any) -> Any:
        return _as_rule(value) if isinstance(value, (int, float)) else value

    @field_validator("triage")
    @classmethod
    def _codes(cls, value: dict[str, TriageMapping]) -> dict[str, TriageMapping]:
        for code in value:
            if not re.fullmatch(r"[A-Z0-9-]+:[A-Za-z0-9.-]+", code):
                raise ValueError(f"finding code {code!r} is not SCHEME:VALUE, e.g. SCT:1386000")
        return value

    @property
    def model_name(self) -> str:
        """The registry name of the model."""
        return self.model.split("@", 1)[0]

    @property
    def model_version(self) -> str | None:
        """A pinned version, or None for whichever version is active."""
        version = self.model.split("@", 1)[1]
        return None if version == "active" else version

    def series_matches(self, attributes: dict[str, Any], instances: int) -> bool:
        """Whether a series with these attributes and this many instances is an input."""
        if self.slices is not None and not self.slices.matches(instances):
            return False
        return all(rule.matches(attributes.get(keyword)) for keyword, rule in self.match.items())


def load_pipeline(path: Path) -> Pipeline:
    """One pipeline file; PipelineError names the file and each bad field."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PipelineError(f"{path}: cannot read YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise PipelineError(f"{path}: a pipeline file holds a mapping")
    try:
        return Pipeline.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(file)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise PipelineError(f"{path}: {problems}") from exc


def load_pipelines(folder: Path) -> list[Pipeline]:
    """Every ``*.yaml`` in ``folder``, sorted by name; names must be unique."""
    pipelines = [load_pipeline(path) for path in sorted(folder.glob("*.yaml"))]
    seen: dict[str, Pipeline] = {}
    for pipeline in pipelines:
        if pipeline.name in seen:
            raise PipelineError(f"{folder}: two pipelines are named {pipeline.name!r}")
        seen[pipeline.name] = pipeline
    return pipelines
