"""Ensembles: the weighted mean of several runs' probabilities, and thresholds for it.

Members and the mean of their probabilities are in
:mod:`hpa_classify.inference.members`.

Thresholds for the mean of several runs are tuned, with the first run's
``evaluate.threshold_method``, on the weighted mean of the runs' labelled
held-out probabilities (``oof_probs.csv`` of a K-fold run, ``val_probs.csv``
of a plain one) over the Ids they share. Runs share those Ids when they were
trained on the same data with the same split seed (every K-fold run on the
same data shares all its Ids). When the runs share fewer than half of the
smallest run's held-out Ids, the fallback is the weighted mean of the runs'
own saved thresholds; :attr:`EnsembleThresholds.source` says which was used.
One run alone keeps its saved thresholds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hpa_classify.classes import NUM_CLASSES, to_multihot
from hpa_classify.errors import RunError
from hpa_classify.evaluate.thresholds import choose_thresholds, load_thresholds
from hpa_classify.inference.members import normalised_weights
from hpa_classify.inference.runs import Run

log = logging.getLogger(__name__)

#: Runs must share at least this fraction of the smallest run's held-out Ids for
#: thresholds to be tuned on their averaged probabilities.
MIN_SHARED_FRACTION = 0.5


@dataclass
class EnsembleThresholds:
    """Per-class thresholds of an ensemble and where they came from."""

    thresholds: np.ndarray
    method: str
    source: str
    n_images: int

    def as_extra(self) -> dict[str, Any]:
        return {"tuned_on": self.source, "n_images": self.n_images}


def ensemble_thresholds(runs: Sequence[Run], weights: Sequence[float] | None = None) -> EnsembleThresholds:
    """Thresholds for the weighted mean of ``runs`` (see the module docstring for the rule)."""
    if not runs:
        raise RunError("an ensemble needs at least one run")
    first = runs[0]
    method = first.cfg.evaluate.threshold_method
    if len(runs) == 1:
        kind = "out-of-fold predictions" if first.is_kfold else "the validation split"
        return EnsembleThresholds(load_thresholds(first.thresholds_path), method,
                                  f"saved with {first.path} (tuned on {kind})", 0)
    w = normalised_weights(runs, weights)
    held = [r.tuning_probs() for r in runs]
    shared = set(held[0][0]).intersection(*(set(h[0]) for h in held[1:]))
    smallest = min(len(h[0]) for h in held)
    if len(shared) >= MIN_SHARED_FRACTION * smallest and shared:
        order = [i for i in held[0][0] if i in shared]
        mean = np.zeros((len(order), NUM_CLASSES), np.float64)
        labels0: list[list[int]] | None = None
        for (ids, probs, labels), wk, run in zip(held, w, runs):
            pos = {sample_id: k for k, sample_id in enumerate(ids)}
            rows = [pos[i] for i in order]
            these = [sorted(labels[r]) for r in rows]
            if labels0 is None:
                labels0 = these
            elif these != labels0:
                raise RunError(
                    f"{run.tuning_probs_path}: labels differ from {runs[0].tuning_probs_path} "
                    "for the same Ids; were the runs trained on the same data?"
                )
            mean += wk * probs[rows]
        y = to_multihot(labels0 or [])
        thresholds = choose_thresholds(
            method, y, mean.astype(np.float32), first.train_prior(), first.cfg.evaluate.fixed_threshold
        )
        source = f"weighted mean of the runs' held-out probabilities ({len(order)} shared images)"
        return EnsembleThresholds(thresholds, method, source, len(order))
    log.warning(
        "the runs share %d held-out Ids (fewer than %.0f%% of %d); using the weighted mean of "
        "their saved thresholds", len(shared), 100 * MIN_SHARED_FRACTION, smallest,
    )
    stacked = np.stack([load_thresholds(r.thresholds_path) for r in runs])
    thresholds = np.average(stacked, axis=0, weights=w)
    source = f"weighted mean of the runs' own thresholds (only {len(shared)} shared held-out images)"
    return EnsembleThresholds(thresholds, method, source, 0)
