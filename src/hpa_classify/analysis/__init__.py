"""Dataset analysis: label and pixel statistics, figures and a self-contained HTML report.

``stats`` computes the numbers, ``plots`` draws them, ``analyze`` runs the whole
analysis of a dataset (``hpa analyze DATA -o OUT`` calls
:func:`hpa_classify.analysis.analyze.analyze`), ``preview`` draws the contact
sheet of the synthetic classes.
"""
