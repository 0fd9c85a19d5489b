"""MONAI bundles on disk: find them, read them, check them, and build their network.

A model is a MONAI bundle folder, laid out as the MONAI Model Zoo lays them out::

    configs/metadata.json      version, task, network_data_format (inputs and outputs) ...
    configs/inference.json     network_def, preprocessing, inferer, postprocessing (or .yaml)
    models/model.pt            state dict (or models/model.ts, TorchScript)
    configs/pacs_ai.json       optional, ours: what bundles do not say (finding code, resources,
                               operating point); see :class:`PacsAiExtras`

Security: a bundle config is code. MONAI's ``ConfigParser`` imports every ``_target_`` and
``eval``-s every ``$`` expression it instantiates, so registering or validating a bundle runs
it with the server's rights. Only bundles from a trusted source belong in ``models_dirs``,
and only ML engineers and admins may register them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from monai.bundle import ConfigParser
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pacs_ai.registry.errors import BundleError
from pacs_ai.registry.spec import SpecError, TensorSpec, read_data_format

METADATA_FILE = Path("configs/metadata.json")
CONFIG_CANDIDATES = (
    Path("configs/inference.json"),
    Path("configs/inference.yaml"),
    Path("configs/inference.yml"),
)
WEIGHT_CANDIDATES = (Path("models/model.pt"), Path("models/model.ts"))
EXTRAS_FILE = Path("configs/pacs_ai.json")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}$")


class CodedConcept(BaseModel):
    """A coded finding (SNOMED CT by default), as DICOM SR writes it (PS3.3 8.8)."""

    model_config = ConfigDict(extra="forbid")

    code_value: str = Field(min_length=1, max_length=64)
    coding_scheme: str = Field(default="SCT", min_length=1, max_length=16)
    code_meaning: str = Field(min_length=1, max_length=64)


class Resources(BaseModel):
    """What one running copy of the model asks Ray for (an actor's resource request)."""

    model_config = ConfigDict(extra="forbid")

    num_cpus: float = Field(default=1.0, ge=0)
    num_gpus: float = Field(default=0.0, ge=0)
    memory_mb: int = Field(default=1024, ge=1)


class OperatingPoint(BaseModel):
    """Where a study score becomes a positive finding, and how that threshold was chosen."""

    model_config = ConfigDict(extra="forbid")

    score_key: str = "score"
    threshold: float = Field(ge=0.0, le=1.0)
    chosen_for: str = ""


class SegmentationOutput(BaseModel):
    """Which output channel is the finding's segmentation (for a DICOM SEG)."""

    model_config = ConfigDict(extra="forbid")

    key: str = "pred"
    channel: int = Field(ge=0)
    label: str = Field(min_length=1, max_length=64)


class PacsAiExtras(BaseModel):
    """``configs/pacs_ai.json``: what pacs-ai needs that the bundle format does not cover."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    name: str | None = Field(default=None, pattern=NAME_PATTERN.pattern)
    finding: CodedConcept | None = None
    modality: str | None = None
    body_part: str | None = None
    intended_use: str = ""
    not_for_clinical_use: bool = True
    resources: Resources = Field(default_factory=Resources)
    operating_point: OperatingPoint | None = None
    segmentation: SegmentationOutput | None = None
    preprocessing: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Bundle:
    """A bundle folder that has been read and checked (its network not yet built).

    Attributes
    ----------
    path : pathlib.Path
        The bundle folder, absolute.
    name : str
        Registry name: ``name`` in ``configs/pacs_ai.json``, else the folder name (the Model
        Zoo names bundles by folder, ``spleen_ct_segmentation``).
    version : str
        ``version`` of the metadata.
    metadata : dict
        ``configs/metadata.json`` as read.
    extras : PacsAiExtras
        ``configs/pacs_ai.json``, or its defaults when the bundle has none.
    config_file, weights_file : pathlib.Path
        The inference config and the weights found.
    inputs, outputs : dict of str to TensorSpec
        The declared ``network_data_format``.
    """

    path: Path
    name: str
    version: str
    metadata: dict[str, Any]
    extras: PacsAiExtras
    config_file: Path
    weights_file: Path
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]

    def describe(self) -> dict[str, Any]:
        """JSON-ready description kept in the registry beside the version."""
        return {
            "metadata": self.metadata,
            "pacs_ai": self.extras.model_dump(mode="json"),
            "config_file": str(self.config_file.relative_to(self.path)),
            "weights_file": str(self.weights_file.relative_to(self.path)),
        }


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_structured(path: Path, what: str, bundle: Path) -> dict[str, Any]:
    """A JSON or YAML object, or a :class:`BundleError` that says where it does not parse."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"{bundle}: cannot read {what} {path.name}: {exc}") from exc
    try:
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(
            f"{bundle}: {what} {path.relative_to(bundle)} is not valid JSON: {exc.msg} "
            f"(line {exc.lineno}, column {exc.colno})"
        ) from exc
    except yaml.YAMLError as exc:
        raise BundleError(
            f"{bundle}: {what} {path.relative_to(bundle)} is not valid YAML: {exc}"
        ) from exc
    if not isinstance(data, dict):
        raise BundleError(f"{bundle}: {what} {path.relative_to(bundle)} must hold an object")
    return data


def _first_existing(root: Path, candidates: Iterable[Path]) -> Path | None:
    return next((root / c for c in candidates if (root / c).is_file()), None)


def read_bundle(path: Path | str) -> Bundle:
    """Read a bundle folder and check that it is complete and its files parse.

    Raises
    ------
    BundleError
        Naming the missing file, the file that does not parse (with line and column), the
        missing metadata field or the invalid ``network_data_format`` entry.
    """
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise BundleError(f"{root}: not a folder")
    missing = []
    if not (root / METADATA_FILE).is_file():
        missing.append(str(METADATA_FILE))
    config_file = _first_existing(root, CONFIG_CANDIDATES)
    if config_file is None:
        missing.append(str(CONFIG_CANDIDATES[0]))
    weights_file = _first_existing(root, WEIGHT_CANDIDATES)
    if weights_file is None:
        missing.append(f"{WEIGHT_CANDIDATES[0]} (or {WEIGHT_CANDIDATES[1]})")
    if missing or config_file is None or weights_file is None:
        raise BundleError(f"{root}: not a complete MONAI bundle, missing {', '.join(missing)}")

    metadata = _read_structured(root / METADATA_FILE, "metadata", root)
    config = _read_structured(config_file, "inference config", root)
    if "network_def" not in config:
        raise BundleError(f"{root}: {config_file.relative_to(root)} defines no network_def")
    version = metadata.get("version")
    if not isinstance(version, str) or not VERSION_PATTERN.match(version):
        raise BundleError(f"{root}: metadata version must be a version string, got {version!r}")
    try:
        inputs, outputs = read_data_format(metadata)
    except SpecError as exc:
        raise BundleError(f"{root}: {exc}") from exc

    extras = PacsAiExtras()
    if (root / EXTRAS_FILE).is_file():
        raw = _read_structured(root / EXTRAS_FILE, "pacs-ai settings", root)
        try:
            extras = PacsAiExtras.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise BundleError(f"{root}: {EXTRAS_FILE} is invalid: {problems}") from exc
    name = extras.name or root.name
    if not NAME_PATTERN.match(name):
        raise BundleError(f"{root}: {name!r} is not a usable model name (letters, digits, . _ -)")
    if extras.segmentation and extras.segmentation.key not in outputs:
        raise BundleError(
            f"{root}: segmentation output {extras.segmentation.key!r} is not a declared output"
        )
    return Bundle(
        path=root,
        name=name,
        version=version,
        metadata=metadata,
        extras=extras,
        config_file=config_file,
        weights_file=weights_file,
        inputs=inputs,
        outputs=outputs,
    )


def discover(folders: Iterable[Path]) -> list[Path]:
    """Bundle folders (those holding ``configs/metadata.json``) directly in or below ``folders``.

    A folder given is itself a bundle when it has the metadata file; otherwise its
    subfolders are searched, to any depth, without descending into a bundle found.
    """
    found: list[Path] = []

    def visit(folder: Path) -> None:
        if (folder / METADATA_FILE).is_file():
            found.append(folder.resolve())
            return
        for child in sorted(
            p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
        ):
            visit(child)

    for folder in folders:
        if Path(folder).is_dir():
            visit(Path(folder))
    return sorted(set(found))


def verify_weights(bundle: Bundle, expected_sha256: str) -> None:
    """Refuse weights whose SHA-256 is not the one registered.

    Raises
    ------
    BundleError
        When the file's digest differs: someone replaced or damaged the weights after the
        version was registered, and its metrics no longer describe it.
    """
    actual = sha256_file(bundle.weights_file)
    if actual != expected_sha256:
        raise BundleError(
            f"{bundle.path}: weights {bundle.weights_file.relative_to(bundle.path)} changed since "
            f"registration: sha256 is {actual}, registered {expected_sha256}"
        )


def config_parser(bundle: Bundle) -> ConfigParser:
    """A MONAI ``ConfigParser`` over the bundle's inference config and metadata.

    ``bundle_root`` is set to the bundle folder, as ``monai.bundle run --bundle_root`` does,
    so that paths in the config resolve wherever the server was started.
    """
    parser = ConfigParser()
    try:
        parser.read_config(str(bundle.config_file))
        parser.read_meta(str(bundle.path / METADATA_FILE))
    except Exception as exc:  # MONAI raises what json/yaml raise
        raise BundleError(f"{bundle.path}: config does not load: {exc}") from exc
    parser["bundle_root"] = str(bundle.path)
    return parser


def parsed(bundle: Bundle, parser: ConfigParser, key: str) -> Any:
    """Instantiate one config item; any failure becomes a :class:`BundleError` naming it."""
    try:
        return parser.get_parsed_content(key)
    except Exception as exc:  # a config may fail in any way while it is instantiated
        raise BundleError(f"{bundle.path}: cannot build {key!r} from the config: {exc}") from exc


def _state_dict(loaded: Any) -> Mapping[str, Any]:
    """The state dict in a checkpoint: bare, or under ``model``/``state_dict`` as MONAI saves."""
    if isinstance(loaded, Mapping):
        for key in ("model", "state_dict", "network"):
            inner = loaded.get(key)
            if isinstance(inner, Mapping) and all(isinstance(k, str) for k in inner):
                return inner
        return loaded
    raise TypeError(f"expected a state dict, got {type(loaded).__name__}")


def load_network(
    bundle: Bundle, parser: ConfigParser, device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """Build ``network_def`` and load the bundle's weights into it, in eval mode.

    TorchScript weights (``models/model.ts``) are loaded as they are; a state dict is loaded
    strictly, so that weights of another architecture are refused rather than half-loaded.

    Raises
    ------
    BundleError
        When the network cannot be built or the weights do not fit it.
    """
    where = bundle.weights_file.relative_to(bundle.path)
    if bundle.weights_file.suffix == ".ts":
        try:
            scripted: torch.nn.Module = torch.jit.load(
                str(bundle.weights_file), map_location=device
            )
        except Exception as exc:  # TorchScript raises RuntimeError and others
            raise BundleError(f"{bundle.path}: {where} is not a TorchScript model: {exc}") from exc
        return scripted.eval()
    network = parsed(bundle, parser, "network_def")
    if not isinstance(network, torch.nn.Module):
        raise BundleError(f"{bundle.path}: network_def is a {type(network).__name__}, not a module")
    try:
        checkpoint = torch.load(bundle.weights_file, map_location=device, weights_only=True)
        network.load_state_dict(_state_dict(checkpoint), strict=True)
    except Exception as exc:  # unpickling and shape mismatches raise several types
        raise BundleError(
            f"{bundle.path}: weights {where} do not load into network_def: {exc}"
        ) from exc
    return network.to(device).eval()
