"""The 28 localisation classes of the Kaggle 2018 HPA challenge and fixed constants.

Class ids and names are those of the Kaggle "Human Protein Atlas Image
Classification" (2018) ``Target`` column. The 19 classes of the HPA 2021
single-cell challenge (its ``Label`` column) live beside them, with the maps
between the two spaces (:data:`TO_2021`, :data:`CANONICAL_2018`); the rest of
the package works in the 28 classes.

>>> CLASS_NAMES[0], CLASS_NAMES[27]
('Nucleoplasm', 'Rods & rings')
>>> parse_target("16 0")
[0, 16]
>>> format_target([16, 0])
'0 16'
>>> to_multihot([[0, 2]])[0, :4].tolist()
[1.0, 0.0, 1.0, 0.0]
>>> CLASS_NAMES_2021[17], to_2021([8, 26]), from_2021(parse_label_2021("9|16"))
('Vesicles and punctate cytosolic patterns', [17], [12, 25])
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
    return _class_ids(tokens, f"Target '{text}'", NUM_CLASSES, where, repeats=False)


def _class_ids(tokens: Sequence[str], what: str, n_classes: int, where: str, repeats: bool, hint: str = "") -> list[int]:
    """Sorted unique class ids of ``tokens``; a LabelError naming ``what`` on a bad token or range."""
    ids: list[int] = []
    for raw in tokens:
        tok = raw.strip()
        if not _INT_TOKEN.fullmatch(tok):
            raise LabelError(f"{where}'{tok}' is not a class id in {what}{hint}")
        value = int(tok)
        if not 0 <= value < n_classes:
            raise LabelError(f"{where}class {value} out of range 0-{n_classes - 1} in {what}")
        if value in ids:
            if not repeats:
                raise LabelError(f"{where}class {value} repeated in {what}")
            continue
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


# ----------------------------------------------------------------------------- the 2021 classes

#: The 19 classes of the HPA 2021 single-cell challenge (``Label`` column, ids 0-18).
CLASS_NAMES_2021: tuple[str, ...] = (
    "Nucleoplasm",
    "Nuclear membrane",
    "Nucleoli",
    "Nucleoli fibrillar center",
    "Nuclear speckles",
    "Nuclear bodies",
    "Endoplasmic reticulum",
    "Golgi apparatus",
    "Intermediate filaments",
    "Actin filaments",
    "Microtubules",
    "Mitotic spindle",
    "Centrosome",
    "Plasma membrane",
    "Mitochondria",
    "Aggresome",
    "Cytosol",
    "Vesicles and punctate cytosolic patterns",
    "Negative",
)
NUM_CLASSES_2021 = len(CLASS_NAMES_2021)
#: The 2021 class of an image without any located staining; it goes with no other class.
NEGATIVE_2021 = NUM_CLASSES_2021 - 1

#: Each 2018 class's 2021 class, or None where 2021 has none (15 Microtubule
#: ends, 16 Cytokinetic bridge, 27 Rods & rings). Peroxisomes, Endosomes,
#: Lysosomes, Lipid droplets and Cytoplasmic bodies merge into 17 Vesicles;
#: Actin filaments and Focal adhesion sites into 9; Microtubule organizing
#: center and Centrosome into 12; Plasma membrane and Cell junctions into 13.
#: How it was derived and checked: :func:`to_2021`.
TO_2021: tuple[int | None, ...] = (
    0, 1, 2, 3, 4, 5, 6, 7,      # 0-7: the same classes
    17, 17, 17,                  # 8 Peroxisomes, 9 Endosomes, 10 Lysosomes
    8,                           # 11 Intermediate filaments
    9, 9,                        # 12 Actin filaments, 13 Focal adhesion sites
    10,                          # 14 Microtubules
    None, None,                  # 15 Microtubule ends, 16 Cytokinetic bridge
    11,                          # 17 Mitotic spindle
    12, 12,                      # 18 Microtubule organizing center, 19 Centrosome
    17,                          # 20 Lipid droplets
    13, 13,                      # 21 Plasma membrane, 22 Cell junctions
    14, 15, 16,                  # 23 Mitochondria, 24 Aggresome, 25 Cytosol
    17,                          # 26 Cytoplasmic bodies
    None,                        # 27 Rods & rings
)

#: Each 2021 class's representative 2018 class (one that :data:`TO_2021` maps
#: back to it), for reading 2021 labels into the 28 classes; None for Negative.
#: Where several 2018 classes merged, the one most frequent among the official
#: tables' images carrying the 2021 class (see :func:`from_2021`).
CANONICAL_2018: tuple[int | None, ...] = (
    0, 1, 2, 3, 4, 5, 6, 7,
    11,    # Intermediate filaments
    12,    # Actin filaments (513 images) over Focal adhesion sites (475)
    14,    # Microtubules
    17,    # Mitotic spindle
    19,    # Centrosome (1,131) over Microtubule organizing center (592)
    21,    # Plasma membrane (2,616) over Cell junctions (535)
    23, 24, 25,
    26,    # Cytoplasmic bodies (296) over Lipid droplets (140), Peroxisomes (48), ...
    None,  # Negative: no class
)

_MEMBERS_2021: tuple[tuple[int, ...], ...] = tuple(
    tuple(c for c, new in enumerate(TO_2021) if new == k) for k in range(NEGATIVE_2021)
)


def to_2021(ids: Iterable[int]) -> list[int]:
    """Map 2018 class ids to the 2021 label space (:data:`TO_2021`).

    The map was derived from, and checked against, the two official tables:
    every one of the 21,806 image ids of the 2021 ``train.csv`` is also in the
    2018 ``train.csv`` (shared data ``hpa_labels/hpa2021_train.csv`` and
    ``hpa_labels/kaggle2018_train.csv``). Mapping each image's 2018 Target
    this way (no mapped class: Negative) gives exactly its 2021 label set for
    21,234 of the 21,806 images (97.4%); the 2021 labels were re-annotated, so
    the rest differ. Mapping 16 Cytokinetic bridge to 11 Mitotic spindle
    instead agrees for only 20,937 (322 of the 358 cytokinetic-bridge images
    carry no Mitotic spindle in 2021); none of the 12 Microtubule ends images
    carries 10 Microtubules in 2021, so those two classes map to nothing, as
    does 27 Rods & rings.

    Parameters
    ----------
    ids : iterable of int
        2018 class ids (0-27).

    Returns
    -------
    list of int
        Sorted, unique 2021 class ids; ``[18]`` (Negative) when none of the
        classes has a 2021 class, or there are none.

    Raises
    ------
    LabelError
        On a class outside 0-27.

    Examples
    --------
    >>> to_2021([0, 12, 13, 25])
    [0, 9, 16]
    >>> to_2021([16, 17]), to_2021([27])
    ([11], [18])
    """
    out: set[int] = set()
    for i in ids:
        value = int(i)
        if not 0 <= value < NUM_CLASSES:
            raise LabelError(f"class {value} out of range 0-{NUM_CLASSES - 1}")
        new = TO_2021[value]
        if new is not None:
            out.add(new)
    return sorted(out) or [NEGATIVE_2021]


def from_2021(ids: Iterable[int]) -> list[int]:
    """Map 2021 class ids to the 28 classes, each by its :data:`CANONICAL_2018` class.

    A 2021 class that merged several 2018 classes takes the member most
    frequent among the images carrying it in the official tables (the 2018
    Target of the 21,806 images of the 2021 ``train.csv``): 9 Actin filaments
    -> 12 (513 images, 13 Focal adhesion sites 475), 12 Centrosome -> 19
    (1,131; 18 Microtubule organizing center 592), 13 Plasma membrane -> 21
    (2,616; 22 Cell junctions 535), 17 Vesicles -> 26 Cytoplasmic bodies
    (296; 20 Lipid droplets 140, 8 Peroxisomes 48, 9 Endosomes 45,
    10 Lysosomes 28). ``to_2021(from_2021(s)) == sorted(s)`` for every valid
    2021 label set ``s``.

    Parameters
    ----------
    ids : iterable of int
        2021 class ids (0-18).

    Returns
    -------
    list of int
        Sorted, unique 2018 class ids; ``[]`` for Negative alone.

    Raises
    ------
    LabelError
        On a class outside 0-18, or Negative (18) with other classes.

    Examples
    --------
    >>> from_2021([13, 17, 0])
    [0, 21, 26]
    >>> from_2021([18])
    []
    """
    values = sorted({int(i) for i in ids})
    for value in values:
        if not 0 <= value < NUM_CLASSES_2021:
            raise LabelError(f"2021 class {value} out of range 0-{NUM_CLASSES_2021 - 1}")
    if NEGATIVE_2021 in values and len(values) > 1:
        raise LabelError(f"Negative ({NEGATIVE_2021}) combined with other classes in {values}")
    return sorted(c for c in (CANONICAL_2018[v] for v in values) if c is not None)


def parse_label_2021(text: str, row: str | int | None = None) -> list[int]:
    """Parse a ``|``-separated 2021 Label into sorted, unique 2021 class ids.

    A class named twice is taken once: the official 2021 ``train.csv``
    repeats a class in 146 of its rows (``13|13``, also 17 and 9: the classes
    that merged several 2018 classes).

    Parameters
    ----------
    text : str
        For example ``"7|1|2|0"``.
    row : str or int, optional
        Where the string came from (an Id or a row number), named in errors.

    Returns
    -------
    list of int
        Sorted 2021 class ids.

    Raises
    ------
    LabelError
        On an empty string, a token that is not an integer, a class outside
        0-18, or Negative (18) with other classes.

    Examples
    --------
    >>> parse_label_2021("7|1|2|0")
    [0, 1, 2, 7]
    >>> parse_label_2021("13|0|13")
    [0, 13]
    >>> parse_label_2021("18|3", row="abc")
    Traceback (most recent call last):
    ...
    hpa_classify.errors.LabelError: row abc: Negative (18) combined with other classes in Label '18|3'
    """
    where = f"row {row}: " if row is not None else ""
    text = str(text)
    if not text.strip():
        raise LabelError(f"{where}empty Label (every image needs at least one class, or {NEGATIVE_2021} Negative)")
    ids = _class_ids(text.split("|"), f"Label '{text}'", NUM_CLASSES_2021, where, repeats=True,
                     hint=" (classes are separated by '|')")
    if NEGATIVE_2021 in ids and len(ids) > 1:
        raise LabelError(f"{where}Negative ({NEGATIVE_2021}) combined with other classes in Label '{text}'")
    return ids


def format_label_2021(ids: Iterable[int]) -> str:
    """Format 2021 class ids as a 2021 Label (ascending, ``|``-separated).

    >>> format_label_2021([7, 1, 2, 0])
    '0|1|2|7'
    >>> format_label_2021([])
    ''
    """
    return "|".join(str(i) for i in sorted(set(int(i) for i in ids)))


def probs_to_2021(probs: np.ndarray) -> np.ndarray:
    """Turn probabilities of the 28 classes into scores of the 19 classes of 2021.

    Each 2021 location class takes the largest probability of its 2018
    members (:data:`TO_2021`); the classes without a 2021 class are left out.
    Negative is ``1 -`` the largest of the 18 location scores: a derived
    score, not a probability the model gave, since a 2018 model has no
    negative output.

    Parameters
    ----------
    probs : numpy.ndarray
        Probabilities, shape ``(..., 28)``.

    Returns
    -------
    numpy.ndarray
        Shape ``(..., 19)``, of the input's float dtype (float64 for integers).

    Raises
    ------
    ValueError
        When the last axis is not 28 long.

    Examples
    --------
    >>> p = np.zeros(28)
    >>> p[[0, 12, 13, 26]] = [0.9, 0.2, 0.6, 0.3]
    >>> probs_to_2021(p)[[0, 9, 17, 18]].round(2).tolist()
    [0.9, 0.6, 0.3, 0.1]
    >>> probs_to_2021(np.zeros((2, 3, 28))).shape
    (2, 3, 19)
    """
    p = np.asarray(probs)
    if p.ndim == 0 or p.shape[-1] != NUM_CLASSES:
        raise ValueError(f"probabilities of shape {p.shape}: the last axis must hold {NUM_CLASSES} classes")
    if not np.issubdtype(p.dtype, np.floating):
        p = p.astype(np.float64)
    located = np.stack([p[..., list(members)].max(axis=-1) for members in _MEMBERS_2021], axis=-1)
    negative = 1 - located.max(axis=-1, keepdims=True)
    return np.concatenate([located, negative], axis=-1)
