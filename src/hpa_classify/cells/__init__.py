"""Single cells: nucleus and cell segmentation of HPA fields, label images, their quality.

* :mod:`~hpa_classify.cells.segment`: the default segmentation (no weights): nuclei
  from the blue channel, cells by a watershed seeded by the nuclei;
* :mod:`~hpa_classify.cells.masks`: label images read (with checks) and written;
* :mod:`~hpa_classify.cells.measure`: one row per cell;
* :mod:`~hpa_classify.cells.metrics` and :mod:`~hpa_classify.cells.evaluation`:
  average precision of instance matching;
* :mod:`~hpa_classify.cells.overlay`: outlines on the composite;
* :mod:`~hpa_classify.cells.batch`: every field of a dataset, in parallel, resumable.
"""

from hpa_classify.cells.batch import SegmentSummary, segment_dataset
from hpa_classify.cells.evaluation import evaluate_by_density, evaluate_labels
from hpa_classify.cells.masks import read_labels, write_labels
from hpa_classify.cells.metrics import IOU_THRESHOLDS, MatchCounts, match_counts
from hpa_classify.cells.overlay import draw_outlines
from hpa_classify.cells.scale import infer_pixel_size
from hpa_classify.cells.segment import Segmentation, SegmentSettings, segment_field

__all__ = [
    "IOU_THRESHOLDS",
    "MatchCounts",
    "SegmentSettings",
    "SegmentSummary",
    "Segmentation",
    "draw_outlines",
    "evaluate_by_density",
    "evaluate_labels",
    "infer_pixel_size",
    "match_counts",
    "read_labels",
    "segment_dataset",
    "segment_field",
    "write_labels",
]
