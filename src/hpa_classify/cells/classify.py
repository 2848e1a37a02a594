"""Each cell's 19 probabilities (the HPA 2021 classes): from its field, from its crop, or both.

Three ways, all in the 2021 label space (:data:`~hpa_classify.classes.CLASS_NAMES_2021`):

* **broadcast**: every cell gets its field's probabilities (what a field
  classifier alone can say; the baseline);
* **cell**: the probabilities of a classifier that saw the cell's crop only
  (:mod:`~hpa_classify.cells.crops`), trained on crops labelled with their
  field's labels;
* **combined**: per location class, the weighted geometric mean of the two,
  ``field ** (1 - w) * cell ** w``: a class the field does not show is low in
  every cell, and among the cells of a field that shows it, those whose crop
  shows it rank first.

Negative (class 18) is explicit in every way: one minus the largest of the 18
location probabilities (:func:`~hpa_classify.classes.probs_to_2021`), so a cell
that shows nothing ranks high on Negative. The combination takes the cell's
own Negative: whether a cell expresses the protein is what its crop shows and
its field cannot (a field of expressing cells holds non-expressing ones too).

>>> field = np.full((1, 28), 0.05); field[0, 0] = 0.9
>>> cells = np.full((2, 28), 0.05); cells[0, 0] = 0.8; cells[1, 0] = 0.1
>>> out = cell_scores(field, [0, 0], cells)
>>> np.round(out["combined"][:, [0, 18]], 3).tolist()
[[0.849, 0.2], [0.3, 0.9]]
>>> np.round(out["broadcast"][:, 0], 3).tolist()
[0.9, 0.9]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from hpa_classify.classes import NEGATIVE_2021, NUM_CLASSES, probs_to_2021
from hpa_classify.config import Config
from hpa_classify.inference.cam import to_input
from hpa_classify.inference.predict import predict_batch

__all__ = ["DEFAULT_CELL_WEIGHT", "METHODS", "cell_scores", "combine", "crop_probs"]

#: The ways a cell gets its probabilities, in the order tables list them.
METHODS = ("broadcast", "cell", "combined")

#: Weight of the cell's own probability in the combination (0: the field's alone, 1: the cell's).
DEFAULT_CELL_WEIGHT = 0.5


@torch.inference_mode()
def crop_probs(
    model: nn.Module, cfg: Config, crops: np.ndarray, tta: int = 1, batch_size: int = 128,
) -> np.ndarray:
    """The 28 sigmoid probabilities of each uint8 crop ``(n, 4, S, S)`` (``S`` = ``cfg.data.size``)."""
    if len(crops) == 0:
        return np.zeros((0, NUM_CLASSES), np.float32)
    device = next(model.parameters()).device
    model.eval()
    parts = []
    for start in range(0, len(crops), batch_size):
        x = to_input(crops[start : start + batch_size], cfg, device)
        parts.append(predict_batch(model, x, tta).float().cpu().numpy())
    return np.concatenate(parts)


def combine(field: np.ndarray, cell: np.ndarray, weight: float = DEFAULT_CELL_WEIGHT) -> np.ndarray:
    """The weighted geometric mean ``field ** (1 - weight) * cell ** weight`` of ``(n, 19)`` scores.

    Negative is the cell's own (see the module's notes).

    >>> out = combine(np.full((1, 19), 0.81), np.full((1, 19), 0.25))
    >>> np.round(out[0, [0, 1, 18]], 3).tolist()
    [0.45, 0.45, 0.25]
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the cell weight must be in 0-1, got {weight}")
    mixed = np.power(np.clip(field, 0, 1), 1.0 - weight) * np.power(np.clip(cell, 0, 1), weight)
    mixed[:, NEGATIVE_2021] = cell[:, NEGATIVE_2021]
    return mixed


def cell_scores(
    field_probs: np.ndarray | None,
    field_of_cell: Sequence[int],
    cell_probs: np.ndarray | None,
    weight: float = DEFAULT_CELL_WEIGHT,
) -> dict[str, np.ndarray]:
    """The ``(n_cells, 19)`` scores of every method the given models allow.

    Parameters
    ----------
    field_probs : ndarray, optional
        ``(n_fields, 28)`` probabilities of a field classifier.
    field_of_cell : sequence of int
        For each cell, the row of its field in ``field_probs``.
    cell_probs : ndarray, optional
        ``(n_cells, 28)`` probabilities of a cell classifier.
    weight : float
        The cell's weight in the combination.

    Returns
    -------
    dict
        ``broadcast`` (with a field model), ``cell`` (with a cell model) and
        ``combined`` (with both); at least one model must be given.
    """
    if field_probs is None and cell_probs is None:
        raise ValueError("per-cell scores need a field model, a cell model, or both")
    out: dict[str, np.ndarray] = {}
    if field_probs is not None:
        out["broadcast"] = probs_to_2021(np.asarray(field_probs, np.float64))[np.asarray(field_of_cell, np.int64)]
    if cell_probs is not None:
        if len(cell_probs) != len(field_of_cell):
            raise ValueError(f"{len(cell_probs)} cell probabilities for {len(field_of_cell)} cells")
        out["cell"] = probs_to_2021(np.asarray(cell_probs, np.float64))
    if field_probs is not None and cell_probs is not None:
        out["combined"] = combine(out["broadcast"], out["cell"], weight)
    return out
