"""The demo: synthetic data -> training -> held-out evaluation -> submission, on a CPU."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from hpa_classify.config import load_config
from hpa_classify.data.layout import checked, load_dataset
from hpa_classify.data.synth import generate, matches, written_here
from hpa_classify.errors import DataError
from hpa_classify.evaluate.evaluation import evaluate_held_out
from hpa_classify.progress import Progress, open_task
from hpa_classify.train.single import train_run
from hpa_classify.workflows.submission import predict_run

log = logging.getLogger(__name__)

DEMO_PRESET = "demo-cpu"


def run_demo(
    out: Path,
    n_train: int = 800,
    n_test: int = 200,
    size: int = 128,
    seed: int = 0,
    overrides: list[str] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the whole demo in ``out``: synthesise, train, evaluate held out, predict.

    Each of the four steps is a task of ``progress``. Returns the figures the
    demo reports (held-out and baseline macro F1, files, seconds).
    """
    out = Path(out)
    t0 = time.perf_counter()
    data_dir = out / "data"
    params = {"n_train": n_train, "n_test": n_test, "size": size, "seed": seed}
    if matches(data_dir, **params):
        open_task(progress, f"[1/4] reusing synthetic data in {data_dir}", None).close()
    else:
        step = open_task(progress, f"[1/4] synthesising {n_train} + {n_test} images ({size} px) in {data_dir}", None)
        if data_dir.exists() and not written_here(data_dir):
            raise DataError(
                f"{data_dir}: exists and was not written by 'hpa synth'; the demo deletes only its own "
                "synthetic data: choose another --out"
            )
        if data_dir.exists():
            shutil.rmtree(data_dir)
        generate(data_dir, n_train=n_train, n_test=n_test, size=size, seed=seed, progress=progress)
        step.close()
    t_synth = time.perf_counter() - t0

    cfg = load_config(DEMO_PRESET, overrides or [])
    step = open_task(progress, f"[2/4] training {cfg.model.name} (pretrained: {cfg.model.pretrained}) for "
                     f"{cfg.train.epochs} epochs at {cfg.data.size} px", None)
    train_ds = checked(load_dataset(data_dir, prefer="train", require_labels=True))
    t1 = time.perf_counter()
    run = train_run(cfg, train_ds, out / "runs" / cfg.name, force=True, progress=progress)
    t_train = time.perf_counter() - t1
    step.close()

    step = open_task(progress, "[3/4] evaluating on the held-out synthetic test split", None)
    test_labelled = checked(load_dataset(data_dir / "test_labels.csv", images=data_dir / "test"))
    held_out = evaluate_held_out(run, test_labelled, out_dir=run.path / "eval-test", progress=progress)
    step.close(f"macro F1 {held_out['macro_f1']:.3f}")

    step = open_task(progress, "[4/4] predicting the test split into a submission", None)
    test_ds = checked(load_dataset(data_dir, prefer="test"))
    pred = predict_run(run, test_ds, out / "submission.csv", progress=progress)
    step.close()

    val = json.loads((run.path / "report" / "summary.json").read_text())
    return {
        "held-out macro F1 (synthetic test)": held_out["macro_f1"],
        "label-prior baseline macro F1": held_out["baseline_macro_f1"],
        "held-out macro F1 at threshold 0.5": held_out["macro_f1_at_0.5"],
        "validation macro F1 (tuned thresholds)": val["macro_f1"],
        "test images": held_out["n_images"],
        "submission": str(pred.submission),
        "top-1 fallbacks": pred.n_fallback,
        "report": held_out["report"],
        "run": str(run.path),
        "synth seconds": round(t_synth, 1),
        "train seconds": round(t_train, 1),
        "total seconds": round(time.perf_counter() - t0, 1),
    }
