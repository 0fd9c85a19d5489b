"""MONAI transforms that a bundle's ``inference.json`` names by dotted path.

Our bundles stay plain MONAI bundles: ``preprocessing`` and ``postprocessing`` are
``Compose`` lists of dictionary transforms, and the few steps MONAI has no transform for
(reading one DICOM series into a model grid, reducing a probability map to one study score)
are the classes below. ``python -m monai.bundle run`` finds them as long as ``pacs_ai`` is
importable; the pipeline runs the very same objects on the datasets it received.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from pydicom import dcmread
from pydicom.dataset import Dataset

from pacs_ai.registry.preprocess import BRAIN_WINDOW, PreprocessError, ct_head_input, cxr_input

#: What a loader accepts: datasets already in memory, one file or folder, or a list of files.
SeriesSource = Sequence[Dataset] | str | Path | Sequence[str | Path]


def read_series(source: SeriesSource) -> list[Dataset]:
    """The datasets of one series, from memory, a folder (searched recursively) or files.

    Raises
    ------
    PreprocessError
        When a folder holds no file or a file is not DICOM.
    """
    if isinstance(source, str | Path):
        path = Path(source)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    elif all(isinstance(item, Dataset) for item in source):
        return [item for item in source if isinstance(item, Dataset)]
    else:
        files = [Path(str(item)) for item in source]
    if not files:
        raise PreprocessError(f"no files in {source}")
    datasets: list[Dataset] = []
    for file in files:
        try:
            datasets.append(dcmread(file))
        except Exception as exc:  # pydicom raises several types for a file that is not DICOM
            raise PreprocessError(f"{file} is not a DICOM file: {exc}") from exc
    return datasets


def series_folders(root: str | Path) -> list[str]:
    """Every folder below ``root`` that directly holds ``.dcm`` files (one series each).

    :func:`pacs_ai.synth.write_study` and most exports lay studies out as
    ``study/series/instance.dcm``; this lists the series for a bundle's ``datalist``.
    """
    folders = {str(path.parent) for path in Path(root).rglob("*.dcm")}
    return sorted(folders)


class LoadCtHeadd(MapTransform):
    """Read an axial CT series into the windowed grid of the CT head model.

    Parameters
    ----------
    keys : str or sequence of str
        Keys holding a :data:`SeriesSource`; each is replaced by a ``(1, *shape)`` tensor.
    shape : sequence of int
        ``(slices, rows, columns)`` of the model grid.
    windows : sequence of (centre, width)
        VOI windows in HU, one output channel each: the brain window shows blood against
        brain, a wide one tells blood (50-90 HU) from calcification and bone (100 HU and up),
        which the brain window shows alike.
    allow_missing_keys : bool
        As for every :class:`monai.transforms.MapTransform`.
    """

    def __init__(
        self,
        keys: KeysCollection,
        shape: Sequence[int],
        windows: Sequence[Sequence[float]] = (BRAIN_WINDOW,),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.shape = tuple(int(v) for v in shape)
        self.windows = tuple((float(c), float(w)) for c, w in windows)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Replace each key's series by the model input tensor."""
        out = dict(data)
        for key in self.key_iterator(out):
            datasets = read_series(out[key])
            array = ct_head_input(datasets, shape=self.shape, windows=self.windows)
            out[key] = torch.from_numpy(array)
        return out


class LoadChestRadiographd(MapTransform):
    """Read one chest radiograph into the normalised square image of the CXR model.

    Parameters
    ----------
    keys : str or sequence of str
        Keys holding a :data:`SeriesSource` of exactly one image.
    size : int
        Rows and columns of the model input.
    allow_missing_keys : bool
        As for every :class:`monai.transforms.MapTransform`.
    """

    def __init__(self, keys: KeysCollection, size: int, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.size = int(size)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Replace each key's image by the model input tensor."""
        out = dict(data)
        for key in self.key_iterator(out):
            out[key] = torch.from_numpy(cxr_input(read_series(out[key]), size=self.size))
        return out


def top_k_mean(values: torch.Tensor, k: int) -> float:
    """Mean of the ``k`` largest values (all of them when there are fewer)."""
    flat = values.reshape(-1).float()
    return float(torch.topk(flat, min(k, flat.numel())).values.mean())


class StudyScored(MapTransform):
    """Reduce one channel of a probability output to one study-level score in [0, 1].

    For a segmentation the score is the mean of the ``k`` most confident voxels: unlike the
    single maximum it is not moved by one noisy voxel, and unlike the mean over the volume it
    does not dilute a small bleed in a large head. For a classification output (one value per
    channel) it is that channel's probability.

    Parameters
    ----------
    keys : str or sequence of str
        Keys of channel-first probability tensors (after the activation).
    channel : int
        The channel of the finding.
    k : int
        How many of the highest values are averaged.
    output_key : str
        Where the score is stored (one float).
    allow_missing_keys : bool
        As for every :class:`monai.transforms.MapTransform`.
    """

    def __init__(
        self,
        keys: KeysCollection,
        channel: int = 1,
        k: int = 1,
        output_key: str = "score",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.channel = int(channel)
        self.k = int(k)
        self.output_key = output_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Add the score of the (last) key to the dictionary."""
        out = dict(data)
        for key in self.key_iterator(out):
            out[self.output_key] = top_k_mean(torch.as_tensor(out[key])[self.channel], self.k)
        return out
