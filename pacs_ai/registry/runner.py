"""A bundle loaded for inference, and the loop a bundle's ``run`` section calls.

:class:`BundleModel` is what an inference actor holds: the network with its verified
weights, and the bundle's own ``preprocessing``, ``inferer`` and ``postprocessing``, so that
a study goes through exactly the steps the bundle declares. The activation the bundle's
postprocessing applies (``Activationsd`` with ``softmax``/``sigmoid``) is also read on its
own, without instantiating the rest of the postprocessing: a Model Zoo bundle's
postprocessing also inverts spatial transforms and writes NIfTI files, which a check of the
network's outputs on synthetic input must not do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser
from monai.inferers import Inferer, SimpleInferer

from pacs_ai.registry.bundle import Bundle, config_parser, load_network, parsed, verify_weights
from pacs_ai.registry.errors import BundleError

Transform = Callable[[Mapping[Hashable, Any]], Any]


def declared_activation(bundle: Bundle, parser: ConfigParser) -> str | None:
    """``"softmax"``, ``"sigmoid"`` or None: what the bundle's postprocessing applies first.

    Only the config is read (``Activations``/``Activationsd`` entries of a ``Compose``), with
    ``@`` references resolved, so nothing else of the postprocessing is built.
    """
    if "postprocessing" not in parser:
        return None
    raw = parser["postprocessing"]
    transforms = raw.get("transforms", []) if isinstance(raw, Mapping) else []
    for index, item in enumerate(transforms if isinstance(transforms, list) else []):
        target = str(item.get("_target_", "")) if isinstance(item, Mapping) else ""
        if target.rsplit(".", 1)[-1] not in ("Activations", "Activationsd"):
            continue
        for kind in ("softmax", "sigmoid"):
            if kind in item and parsed(bundle, parser, f"postprocessing#transforms#{index}#{kind}"):
                return kind
    return None


def activate(output: torch.Tensor, activation: str | None) -> torch.Tensor:
    """Apply a declared activation over the channel axis (axis 1) of a batch."""
    if activation == "softmax":
        return torch.softmax(output.float(), dim=1)
    if activation == "sigmoid":
        return torch.sigmoid(output.float())
    return output


class BundleModel:
    """A bundle ready to run: built network, verified weights, the bundle's own transforms.

    Parameters
    ----------
    bundle : Bundle
        A bundle read by :func:`pacs_ai.registry.bundle.read_bundle`.
    expected_sha256 : str, optional
        The digest registered for its weights; when given, other weights are refused.
    device : str or torch.device
        Where the network runs.

    Raises
    ------
    BundleError
        When the weights changed, the network cannot be built, or the weights do not fit it.
    """

    def __init__(
        self,
        bundle: Bundle,
        *,
        expected_sha256: str | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if expected_sha256 is not None:
            verify_weights(bundle, expected_sha256)
        self.bundle = bundle
        self.device = torch.device(device)
        self.parser = config_parser(bundle)
        self.network = load_network(bundle, self.parser, self.device)
        inferer = parsed(bundle, self.parser, "inferer") if "inferer" in self.parser else None
        self.inferer: Inferer = inferer if isinstance(inferer, Inferer) else SimpleInferer()
        self.activation = declared_activation(bundle, self.parser)
        self.image_key = next(iter(bundle.inputs))

    @cached_property
    def preprocessing(self) -> Transform:
        """The bundle's ``preprocessing``, built on first use."""
        return self._transform("preprocessing")

    @cached_property
    def postprocessing(self) -> Transform:
        """The bundle's ``postprocessing``, built on first use."""
        return self._transform("postprocessing")

    def _transform(self, key: str) -> Transform:
        if key not in self.parser:
            raise BundleError(f"{self.bundle.path}: the config has no {key!r}")
        transform = parsed(self.bundle, self.parser, key)
        if not callable(transform):
            raise BundleError(f"{self.bundle.path}: {key!r} is not a transform")
        return transform

    def forward(self, batch: torch.Tensor) -> Any:
        """The network through the bundle's inferer, without gradients (raw outputs)."""
        with torch.inference_mode():
            return self.inferer(batch.to(self.device), self.network)

    def predict(self, source: Any) -> dict[Hashable, Any]:
        """Run one study: preprocessing, inferer, postprocessing, as the bundle declares them.

        Parameters
        ----------
        source : Any
            What the bundle's loader reads for its input key: for our bundles, the pydicom
            datasets of one series, a folder or a list of files.

        Returns
        -------
        dict
            The postprocessed item: ``pred`` (probabilities, channel first) and whatever the
            postprocessing adds, such as the study ``score``.
        """
        item = self.preprocessing({self.image_key: source})
        image = torch.as_tensor(item[self.image_key])
        item["pred"] = self.forward(image[None])[0].cpu()
        result = self.postprocessing(item)
        if not isinstance(result, dict):
            raise BundleError(
                f"{self.bundle.path}: postprocessing returned {type(result).__name__}"
            )
        return result


def run_datalist(
    *,
    datalist: Sequence[Mapping[Hashable, Any]],
    image_key: str,
    preprocessing: Transform,
    network: torch.nn.Module,
    inferer: Inferer,
    postprocessing: Transform,
    device: torch.device,
    output_file: str,
) -> list[dict[str, Any]]:
    """Run a bundle over its datalist and write each input's study score to ``output_file``.

    This is the ``run`` of our bundles' ``inference.json``: ``python -m monai.bundle run
    --config_file configs/inference.json --dataset_dir FOLDER`` scores every series under
    FOLDER without pacs-ai's server (MONAI's ignite-based evaluator would need
    pytorch-ignite, which pacs-ai does not depend on).
    """
    network.eval()
    rows: list[dict[str, Any]] = []
    for entry in datalist:
        item = preprocessing(dict(entry))
        with torch.inference_mode():
            output = inferer(torch.as_tensor(item[image_key])[None].to(device), network)
        item["pred"] = output[0].cpu()
        result = postprocessing(item)
        rows.append({"source": str(entry[image_key]), "score": float(result["score"])})
    path = Path(output_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2) + "\n")
    return rows
