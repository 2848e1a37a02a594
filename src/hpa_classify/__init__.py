"""hpa-classify: protein localisation in Human Protein Atlas images.

The package reads four-channel HPA fields of view (red microtubules, green the
protein of interest, blue nucleus, yellow endoplasmic reticulum) and predicts
which of the 28 Kaggle 2018 localisation classes the green protein shows.
"""

__version__ = "0.1.0"
