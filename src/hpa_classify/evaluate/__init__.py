"""Evaluation: macro F1 and per-class metrics, per-class thresholds, figures and reports.

Modules
-------
metrics
    Macro F1 (equal to scikit-learn's), binarisation with a top-1 fallback,
    the per-class table and the label-prior baseline.
thresholds
    Per-class threshold search, prior matching, and ``thresholds.json`` I/O.
figures
    Training curves, F1 per class, precision-recall, label counts, examples.
report
    The self-contained HTML / Markdown evaluation report of a run.
evaluation
    Tuning a run's thresholds, scoring it on held-out data, redrawing its report.
"""
