"""Whole jobs built from the layers below: a Kaggle submission, run comparisons, the demo,
and the quality benchmark."""
