"""Procedural Human Protein Atlas-like fields of view with Kaggle 2018 labels.

The generator draws four-channel fluorescence images (red microtubules, green
protein of interest, blue nucleus, yellow endoplasmic reticulum) of a few cells
each, and colours the green channel by a multi-label set of the 28 Kaggle 2018
localisation classes. Every cell of a field shares the labels, as in HPA.

Each green pattern is placed relative to the reference channels: nuclear
classes inside the blue nucleus, endoplasmic reticulum on the yellow network,
microtubules on the red filaments, plasma membrane and cell junctions on the
cell outline, mitotic classes on dividing cells only. Fields vary in cell
count, size, shape, density, brightness, blur and noise, and the protein's
expression varies from cell to cell.

Label sets are drawn from the real label statistics of the Kaggle 2018
training set (embedded in :mod:`hpa_classify.data.synth._stats`), with
``class_alpha`` flattening the class imbalance and ``min_per_class``
guaranteeing rare classes a minimum count.

Modules: ``labels`` (label sets), ``geometry`` (cells and their placement),
``drawing`` (primitives), ``reference`` (red, blue and yellow channels),
``patterns`` (the green pattern of each class), ``optics`` (blur, exposure,
noise), ``image`` (one field), ``writer`` (a dataset on disk). The contact
sheet of one field per class is :func:`hpa_classify.analysis.preview.preview`.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> labels = sample_labels(3, rng)
>>> len(labels), all(1 <= len(s) <= 5 for s in labels)
(3, True)
>>> render_sample([0, 25], 64, np.random.default_rng(1)).shape
(4, 64, 64)
"""

from hpa_classify.data.synth.image import MIN_SIZE, render_sample
from hpa_classify.data.synth.labels import class_probabilities, sample_labels
from hpa_classify.data.synth.writer import (
    GENERATOR_TAG,
    TEST_PREFIX,
    TRAIN_PREFIX,
    SynthSummary,
    generate,
    matches,
    written_here,
)

__all__ = [
    "GENERATOR_TAG",
    "MIN_SIZE",
    "TEST_PREFIX",
    "TRAIN_PREFIX",
    "SynthSummary",
    "class_probabilities",
    "generate",
    "matches",
    "written_here",
    "render_sample",
    "sample_labels",
]
