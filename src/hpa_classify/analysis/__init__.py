"""Dataset analysis: label and pixel statistics, figures and a self-contained HTML report.

``stats`` computes the numbers, ``plots`` draws them, ``report`` runs the whole
analysis of a dataset (``hpa analyze DATA -o OUT`` calls
:func:`hpa_classify.analysis.report.analyze`).
"""
