"""Evaluation: macro F1 and per-class metrics, per-class thresholds, and reports.

Modules
-------
metrics
    Macro F1 (equal to scikit-learn's), binarisation with a top-1 fallback,
    the per-class table and the label-prior baseline.
thresholds
    Per-class threshold search, prior matching, and ``thresholds.json`` I/O.
report
    Figures and a self-contained HTML / Markdown evaluation report.
"""
