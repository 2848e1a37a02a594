"""The 28 localisation classes of the Kaggle 2018 HPA challenge and fixed constants.

Class ids and names are those of the Kaggle "Human Protein Atlas Image
Classification" (2018) ``Target`` column.

>>> CLASS_NAMES[0], CLASS_NAMES[27]
('Nucleoplasm', 'Rods & rings')
>>> parse_target("16 0")
[0, 16]
>>> format_target([16, 0])
'0 16'
>>> to_multihot([[0, 2]])[0, :4].tolist()
[1.0, 0.0, 1.0, 0.0]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

from hpa_classify.errors import LabelError

CLASS_NAMES: tuple[str, ...] = (
    "Nucleoplasm",
    "Nuclear membrane",
    "Nucleoli",
    "Nucleoli fibrillar center",
    "Nuclear speckles",
    "Nuclear bodies",
    "Endoplasmic reticulum",
    "Golgi apparatus",
    "Peroxisomes",
    "Endosomes",
    "Lysosomes",
    "Intermediate filaments",
    "Actin filaments",
    "Focal adhesion sites",
    "Microtubules",
    "Microtubule ends",
    "Cytokinetic bridge",
    "Mitotic spindle",
    "Microtubule organizing center",
    "Centrosome",
    "Lipid droplets",
    "Plasma membrane",
    "Cell junctions",
    "Mitochondria",
    "Aggresome",
    "Cytosol",
    "Cytoplasmic bodies",
    "Rods & rings",
)
NUM_CLASSES = len(CLASS_NAMES)
_INT_TOKEN = re.compile(r"-?[0-9]+")

#: Channel order of every array the package produces: (4, H, W) in this order.
CHANNELS: tuple[str, ...] = ("red", "green", "blue", "yellow")
#: What each channel stains.
CHANNEL_STAINS: dict[str, str] = {
    "red": "microtubules",
    "green": "protein of interest",
    "blue": "nucleus",
    "yellow": "endoplasmic reticulum",
}

#: Images per class in the 31,072-row Kaggle 2018 ``train.csv`` (counted from
#: that file: shared data ``hpa_labels/kaggle2018_train.csv``).
KAGGLE2018_CLASS_COUNTS: tuple[int, ...] = (
    12885, 1254, 3621, 1561, 1858, 2513, 1008, 2822, 53, 45, 28, 1093, 688, 537,
    1066, 21, 530, 210, 902, 1482, 172, 3777, 802, 2965, 322, 8228, 328, 11,
)
KAGGLE2018_N_IMAGES = 31072

#: Default per-channel normalisation on the 0-1 scale (red, green, blue, yellow):
#: pixel mean and standard deviation measured over the 8 real 512x512 Kaggle-layout
#: HPA samples in the shared data (``hpa_samples/kaggle_layout``). A dataset's own
#: values can be set in the config (``data.mean`` / ``data.std``).
DEFAULT_MEAN: tuple[float, ...] = (0.0578, 0.0415, 0.0526, 0.0612)
DEFAULT_STD: tuple[float, ...] = (0.1122, 0.0936, 0.1414, 0.1112)


def parse_target(text: str, row: str | int | None = None) -> list[int]:
    """Parse a space-separated Target string into sorted, unique class ids.

    Parameters
    ----------
    text : str
        For example ``"16 0"``.
    row : str or int, optional
        Where the string came from (an Id or a row number), named in errors.

    Returns
    -------
    list of int
        Sorted class ids.

    Raises
    ------
    LabelError
        On an empty string, a token that is not an integer, a class outside
        0-27, or a repeated class.

    Examples
    --------
    >>> parse_target(" 25  0 ")
    [0, 25]
    >>> parse_target("28", row="abc")
    Traceback (most recent call last):
    ...
    hpa_classify.errors.LabelError: row abc: class 28 out of range 0-27 in Target '28'
    """
    where = f"row {row}: " if row is not None else ""
    tokens = str(text).split()
    if not tokens:
        raise LabelError(f"{where}empty Target (every image needs at least one class)")
    ids: list[int] = []
    for tok in tokens:
        if not _INT_TOKEN.fullmatch(tok):
            raise LabelError(f"{where}'{tok}' is not a class id in Target '{text}'")
        value = int(tok)
        if not 0 <= value < NUM_CLASSES:
            raise LabelError(
                f"{where}class {value} out of range 0-{NUM_CLASSES - 1} in Target '{text}'"
            )
        if value in ids:
            raise LabelError(f"{where}class {value} repeated in Target '{text}'")
        ids.append(value)
    return sorted(ids)


def format_target(ids: Iterable[int]) -> str:
    """Format class ids as a Kaggle Target string (ascending, space-separated).

    >>> format_target([3, 1])
    '1 3'
    >>> format_target([])
    ''
    """
    return " ".join(str(i) for i in sorted(set(int(i) for i in ids)))


def to_multihot(labels: Sequence[Sequence[int]]) -> np.ndarray:
    """Turn lists of class ids into an ``(N, 28)`` float32 multi-hot matrix."""
    out = np.zeros((len(labels), NUM_CLASSES), dtype=np.float32)
    for i, ids in enumerate(labels):
        out[i, list(ids)] = 1.0
    return out


def from_multihot(matrix: np.ndarray) -> list[list[int]]:
    """Inverse of :func:`to_multihot`: class ids of each row that are set.

    >>> from_multihot(np.array([[0, 1] + [0] * 26, [1] * 28]))[0]
    [1]
    """
    return [np.flatnonzero(np.asarray(row) > 0.5).tolist() for row in matrix]
