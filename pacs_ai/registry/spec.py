"""The inputs and outputs a bundle declares (``network_data_format`` of its metadata).

MONAI's bundle specification describes each network input and output by type, format,
channels, spatial shape, dtype and value range. Spatial sizes are integers or small
expressions: ``"32*n"`` (any multiple of 32), ``"2**p"`` (a power of two), ``"*"`` (any
size). :meth:`TensorSpec.concrete_shape` turns them into one size to test with, as
``monai.bundle.verify_net_in_out`` does, but without ``eval``: only integers, ``n``, ``p``
and ``+ - * **`` are accepted.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

#: Output types that are one value per channel (no spatial axes). The Model Zoo writes their
#: ``spatial_shape`` loosely (``[1, 2]`` for a 2-vector), so only the channels are checked.
VECTOR_TYPES = frozenset({"probabilities", "probability", "logits", "vector"})
VECTOR_FORMATS = frozenset({"classes", "classification"})
#: The size a ``"*"`` axis gets when a bundle is tried out.
ANY_SIZE = 32

DTYPES: dict[str, torch.dtype] = {
    "float16": torch.float16,
    "float32": torch.float32,
    "float64": torch.float64,
    "uint8": torch.uint8,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
}


class SpecError(ValueError):
    """A ``network_data_format`` entry is missing a field or holds a value we cannot use."""


def _size(expression: str, n: int, p: int) -> int:
    """Evaluate a spatial size expression over integers, ``n`` and ``p`` only."""
    operators = (ast.Add, ast.Sub, ast.Mult, ast.Pow)

    def value(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name) and node.id in ("n", "p"):
            return n if node.id == "n" else p
        if isinstance(node, ast.BinOp) and isinstance(node.op, operators):
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Pow) and right > 16:
                raise SpecError(f"exponent too large in spatial size {expression!r}")
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            return int(left**right)
        raise SpecError(f"unsupported spatial size {expression!r}: use integers, n, p, + - * **")

    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise SpecError(f"spatial size {expression!r} does not parse") from exc
    return value(tree.body)


@dataclass(frozen=True)
class TensorSpec:
    """One declared input or output of a bundle's network.

    Attributes
    ----------
    key : str
        Its name in ``network_data_format`` (``"image"``, ``"pred"``).
    type, format, modality : str
        As declared (``"image"``/``"hounsfield"``/``"CT"``, ``"probabilities"``/``"classes"``).
    num_channels : int
        Channels of the tensor (axis 1, after the batch axis).
    spatial_shape : tuple of (int or str)
        Sizes or size expressions, see the module docstring.
    dtype : str
        ``"float32"`` and the like.
    value_range : tuple of float, optional
        Inclusive bounds of the values, when declared.
    is_patch_data : bool
        Whether the shape is that of a patch (sliding window) rather than the whole image.
    channel_def : dict of str to str
        Meaning of each channel.
    """

    key: str
    type: str
    format: str
    modality: str
    num_channels: int
    spatial_shape: tuple[int | str, ...]
    dtype: str
    value_range: tuple[float, float] | None
    is_patch_data: bool
    channel_def: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_metadata(cls, key: str, raw: Any) -> TensorSpec:
        """Read one entry of ``network_data_format``; :class:`SpecError` names what is wrong."""
        where = f"network_data_format entry {key!r}"
        if not isinstance(raw, Mapping):
            raise SpecError(f"{where} must be an object")
        try:
            channels = int(raw["num_channels"])
            shape_raw = raw["spatial_shape"]
        except KeyError as exc:
            raise SpecError(f"{where} has no {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise SpecError(f"{where}: num_channels must be an integer") from exc
        if channels < 1:
            raise SpecError(f"{where}: num_channels must be at least 1")
        if not isinstance(shape_raw, list | tuple) or not all(
            isinstance(v, int | str) and not isinstance(v, bool) for v in shape_raw
        ):
            raise SpecError(f"{where}: spatial_shape must be a list of integers or expressions")
        dtype = str(raw.get("dtype", "float32"))
        if dtype not in DTYPES:
            raise SpecError(f"{where}: unsupported dtype {dtype!r} (one of {sorted(DTYPES)})")
        value_range = raw.get("value_range")
        bounds: tuple[float, float] | None = None
        if value_range is not None:
            if not isinstance(value_range, list | tuple) or len(value_range) != 2:
                raise SpecError(f"{where}: value_range must be [low, high]")
            bounds = (float(value_range[0]), float(value_range[1]))
            if bounds[0] > bounds[1]:
                raise SpecError(f"{where}: value_range low {bounds[0]} above high {bounds[1]}")
        channel_def = raw.get("channel_def") or {}
        if not isinstance(channel_def, Mapping):
            raise SpecError(f"{where}: channel_def must map channel numbers to meanings")
        return cls(
            key=key,
            type=str(raw.get("type", "")),
            format=str(raw.get("format", "")),
            modality=str(raw.get("modality", "")),
            num_channels=channels,
            spatial_shape=tuple(shape_raw),
            dtype=dtype,
            value_range=bounds,
            is_patch_data=bool(raw.get("is_patch_data", False)),
            channel_def={str(k): str(v) for k, v in channel_def.items()},
        )

    @property
    def is_vector(self) -> bool:
        """One value per channel (a classification), not an image."""
        return self.type in VECTOR_TYPES or self.format in VECTOR_FORMATS

    def concrete_shape(self, n: int = 1, p: int = 1) -> tuple[int, ...]:
        """The spatial shape with ``n``, ``p`` and ``*`` replaced by sizes to test with."""
        sizes = []
        for item in self.spatial_shape:
            if isinstance(item, int):
                size = item
            elif item.strip() == "*":
                size = ANY_SIZE
            else:
                size = _size(item, n, p)
            if size < 1:
                raise SpecError(f"spatial size {item!r} of {self.key!r} gives {size}")
            sizes.append(size)
        return tuple(sizes)

    def torch_dtype(self) -> torch.dtype:
        """The declared dtype as torch's."""
        return DTYPES[self.dtype]


def read_data_format(
    metadata: Mapping[str, Any],
) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]:
    """The declared inputs and outputs of a bundle, in declaration order.

    Raises
    ------
    SpecError
        When ``network_data_format`` is absent or declares no input or no output.
    """
    data_format = metadata.get("network_data_format")
    if not isinstance(data_format, Mapping):
        raise SpecError("metadata has no network_data_format")
    parts = []
    for side in ("inputs", "outputs"):
        entries = data_format.get(side)
        if not isinstance(entries, Mapping) or not entries:
            raise SpecError(f"network_data_format declares no {side}")
        parts.append({str(k): TensorSpec.from_metadata(str(k), v) for k, v in entries.items()})
    return parts[0], parts[1]
