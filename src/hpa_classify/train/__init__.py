"""Training by transfer learning with Lightning: :func:`hpa_classify.train.fit.fit` is the
entry point (one run, K folds, external images, resume)."""
