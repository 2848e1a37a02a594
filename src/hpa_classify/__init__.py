"""hpa-classify: protein localisation in Human Protein Atlas images.

The package reads four-channel HPA fields of view (red microtubules, green the
protein of interest, blue nucleus, yellow endoplasmic reticulum) and predicts
which of the 28 Kaggle 2018 localisation classes the green protein shows.

The calls most users need are available from here::

    import hpa_classify as hpa

    hpa.synthesize("data", n_train=800, n_test=200, size=128, seed=0)
    data = hpa.checked(hpa.load_dataset("data"))
    cfg = hpa.load_config("demo-cpu")
    result = hpa.fit(cfg, data, "runs/demo")            # folds=5 for K-fold training
    run = hpa.open_run("runs/demo")
    test = hpa.checked(hpa.load_dataset("data/test_labels.csv", images="data/test"))
    print(hpa.evaluate_held_out(run, test)["macro_f1"])
    hpa.predict_run(run, hpa.load_dataset("data", prefer="test"), "submission.csv")

Names are resolved on first use: ``import hpa_classify`` alone loads neither
torch nor Lightning, so the command line starts fast (a lazy import kept for
start-up speed, not to dodge a cycle).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> (module, attribute).
_API: dict[str, tuple[str, str]] = {
    "load_dataset": ("hpa_classify.data.layout", "load_dataset"),
    "checked": ("hpa_classify.data.layout", "checked"),
    "synthesize": ("hpa_classify.data.synth", "generate"),
    "load_config": ("hpa_classify.config", "load_config"),
    "fit": ("hpa_classify.train.fit", "fit"),
    "open_run": ("hpa_classify.inference.runs", "open_run"),
    "load_model": ("hpa_classify.inference.runs", "load_model"),
    "predict_probs": ("hpa_classify.inference.predict", "predict_probs"),
    "tune_thresholds": ("hpa_classify.evaluate.evaluation", "tune_thresholds"),
    "evaluate_held_out": ("hpa_classify.evaluate.evaluation", "evaluate_held_out"),
    "report_run": ("hpa_classify.evaluate.evaluation", "report_run"),
    "predict_run": ("hpa_classify.workflows.submission", "predict_run"),
    "analyze": ("hpa_classify.analysis.analyze", "analyze"),
    "compare_runs": ("hpa_classify.workflows.compare", "compare_runs"),
    "run_demo": ("hpa_classify.workflows.demo", "run_demo"),
}

__all__ = ["__version__", *sorted(_API)]


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _API[name]
    except KeyError:
        raise AttributeError(f"module 'hpa_classify' has no attribute '{name}'") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
