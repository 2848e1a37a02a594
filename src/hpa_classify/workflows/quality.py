"""Running the quality benchmark: train every recipe of :data:`~hpa_classify.workflows.bench.ABLATIONS`
over its seeds on one cached synthetic dataset, score each held out, write the table."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from hpa_classify.config import Config, config_to_yaml, load_config
from hpa_classify.data.layout import checked, load_dataset
from hpa_classify.data.synth.image import REVISIONS
from hpa_classify.errors import ConfigError
from hpa_classify.evaluate.evaluation import evaluate_held_out
from hpa_classify.fileio import write_csv, write_text
from hpa_classify.inference.runs import open_run
from hpa_classify.progress import Progress, open_task
from hpa_classify.train.single import train_run
from hpa_classify.workflows.bench import (
    ABLATIONS,
    Ablation,
    BenchSpec,
    cached_synth,
    fmt_score,
    markdown_table,
    summarize,
)

log = logging.getLogger(__name__)


@dataclass
class BenchResult:
    """What :func:`run_quality` measured and wrote."""

    runs: pd.DataFrame
    table: str
    markdown_path: Path
    csv_path: Path
    wall_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def ensure_data(spec: BenchSpec, cache: Path, progress: Progress | None = None) -> Path:
    """The benchmark's synthetic dataset in ``cache``: generated once, reused after."""
    folder = Path(cache) / (f"synth-{spec.n_train}-{spec.n_test}-{spec.size}px-seed{spec.data_seed}"
                            + (f"-v{spec.synth_version}" if spec.synth_version != 1 else ""))
    return cached_synth(folder, n_train=spec.n_train, n_test=spec.n_test, size=spec.size, seed=spec.data_seed,
                        min_per_class=spec.min_per_class, version=spec.synth_version, progress=progress)


def _finished(run_dir: Path, cfg: Config) -> dict[str, Any] | None:
    """The held-out summary of an earlier identical run in ``run_dir``, if complete."""
    try:
        same = (run_dir / "config.yaml").read_text(encoding="utf-8") == config_to_yaml(cfg)
        summary = json.loads((run_dir / "eval-test" / "summary.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return summary if same else None


def _plan(spec: BenchSpec) -> list[tuple[Ablation, int, Config]]:
    plan = []
    for ab in ABLATIONS:
        if ab.post_hoc or not spec.runs(ab):
            continue
        for seed in spec.seeds_for(ab):
            cfg = load_config(
                spec.preset,
                [*spec.base_overrides(), *ab.overrides, f"seed={seed}", f"name=bench-{ab.slug}-seed{seed}"],
            )
            plan.append((ab, seed, cfg))
    return plan


def run_quality(
    spec: BenchSpec,
    out: str | os.PathLike[str],
    cache: str | os.PathLike[str] | None = None,
    resume: bool = False,
    command: str = "",
    threads: int | None = None,
    progress: Progress | None = None,
) -> BenchResult:
    """Train every recipe of :data:`~hpa_classify.workflows.bench.ABLATIONS`, score it held out, write the table.

    Parameters
    ----------
    spec : BenchSpec
        Data, epochs and seeds (:data:`~hpa_classify.workflows.bench.FULL` or
        :data:`~hpa_classify.workflows.bench.QUICK`).
    out : path
        Folder for ``runs/<ablation>/seed<k>/``, ``results.csv`` (one row per
        run) and ``quality.md`` (the table and how it was made); both written
        atomically, after every run.
    cache : path, optional
        Folder holding the synthetic dataset (default ``<out>/data``).
    resume : bool
        Keep runs already finished in ``out`` with the same config.
    command : str
        The command line, recorded in ``quality.md``.
    threads : int, optional
        Set torch's intra-op threads for this process (default: torch's own
        choice, one per core). On a machine shared with other jobs, one
        thread can be much faster than two that wait on each other.
    progress : Progress, optional
        One task for the whole benchmark, and one per run closed with its score.

    Returns
    -------
    BenchResult
    """
    out = Path(out)
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    load_start = os.getloadavg()
    plan = _plan(spec)  # every config is checked before anything runs
    data_dir = ensure_data(spec, Path(cache) if cache is not None else out / "data", progress)
    train_ds = checked(load_dataset(data_dir, prefer="train", require_labels=True))
    test_ds = checked(load_dataset(data_dir / "test_labels.csv", images=data_dir / "test"))
    rows: list[dict[str, Any]] = []
    csv_path, md_path = out / "results.csv", out / "quality.md"
    whole = open_task(progress, "quality benchmark", len(plan))
    for ab, seed, cfg in plan:
        task = open_task(progress, f"{ab.name}, seed {seed}", None)
        row = _one_run(ab, seed, cfg, out / "runs" / ab.slug / f"seed{seed}", train_ds, test_ds, resume, rows,
                       with_fixed=spec.runs(next(a for a in ABLATIONS if a.post_hoc)))
        task.close(f"held-out macro F1 {row['macro_f1']:.3f}" + (", finished run reused" if row["seconds"] == 0 else ""))
        whole.advance(1)
        _write(rows, spec, command, t0, load_start, csv_path, md_path)
    whole.close()
    runs, table = _write(rows, spec, command, t0, load_start, csv_path, md_path)
    return BenchResult(runs=runs, table=table, markdown_path=md_path, csv_path=csv_path,
                       wall_seconds=time.perf_counter() - t0, extra={"data": str(data_dir)})


def _one_run(
    ab: Ablation, seed: int, cfg: Config, run_dir: Path, train_ds: Any, test_ds: Any, resume: bool,
    rows: list[dict[str, Any]], with_fixed: bool = True,
) -> dict[str, Any]:
    """Train (or reuse) one run, score it held out; append its row(s) to ``rows`` and return it.

    A default run also gives the fixed-threshold row, unless ``with_fixed`` is false.
    """
    t1 = time.perf_counter()
    held = _finished(run_dir, cfg) if resume else None
    reused = held is not None
    if held is None:
        run = train_run(cfg, train_ds, run_dir, force=True)
        held = evaluate_held_out(run, test_ds, out_dir=run_dir / "eval-test")
    else:
        run = open_run(run_dir)
        log.info("%s: reusing the finished run", run_dir)
    val = json.loads((run.path / "report" / "summary.json").read_text(encoding="utf-8"))
    row = {
        "ablation": ab.name,
        "seed": seed,
        "macro_f1": held["macro_f1"],
        "val_macro_f1": val["macro_f1"],
        "baseline_macro_f1": held["baseline_macro_f1"],
        "seconds": 0.0 if reused else round(time.perf_counter() - t1, 1),  # 0: reused, not trained here
        "run": str(run_dir),
    }
    rows.append(row)
    if ab.name == "default" and with_fixed:
        fixed = next(a for a in ABLATIONS if a.post_hoc)
        rows.append({**row, "ablation": fixed.name, "macro_f1": held["macro_f1_at_0.5"],
                     "val_macro_f1": val["macro_f1_at_0.5"], "seconds": 0.0})
    return row


#: The columns of ``results.csv``.
COLUMNS = ["ablation", "seed", "macro_f1", "val_macro_f1", "baseline_macro_f1", "seconds", "run"]


def _write(
    rows: list[dict[str, Any]],
    spec: BenchSpec,
    command: str,
    t0: float,
    load_start: tuple[float, float, float],
    csv_path: Path,
    md_path: Path,
) -> tuple[pd.DataFrame, str]:
    order = {a.name: i for i, a in enumerate(ABLATIONS)}
    runs = pd.DataFrame(rows, columns=COLUMNS)
    runs = runs.sort_values(["ablation", "seed"], key=lambda c: c.map(order) if c.name == "ablation" else c)
    runs = runs.reset_index(drop=True)
    table = markdown_table(runs)
    wall = time.perf_counter() - t0
    baseline = summarize(runs.loc[runs["ablation"] == "default", "baseline_macro_f1"]) if len(runs) else None
    load_now = os.getloadavg()
    lines = [
        "# Quality benchmark (synthetic HPA)",
        "",
        f"Command: `{command or 'hpa bench quality'}`",
        "",
        f"Data: {spec.n_train} train + {spec.n_test} test synthetic images (version {spec.synth_version}, "
        f"revision {REVISIONS[spec.synth_version]}), {spec.size} px, data seed {spec.data_seed}"
        + (f", at least {spec.min_per_class} images of every class in each split" if spec.min_per_class else "")
        + f". Recipe: preset `{spec.preset}`, {spec.epochs} epochs"
        + (f", overrides {', '.join(spec.overrides)}" if spec.overrides else "")
        + f". Seeds: default and random init {list(spec.seeds)}, other ablations {list(spec.ablation_seeds)}.",
        "",
        f"Wall time: {wall / 60:.1f} min on {os.cpu_count()} CPU cores, {_torch_threads()} torch "
        f"thread(s); load average "
        f"{load_start[0]:.1f} at the start, {load_now[0]:.1f} now. Held-out macro F1 on the test split "
        "(thresholds tuned on each run's validation split).",
        "",
        table,
    ]
    if baseline is not None and not math.isnan(baseline.mean):
        lines.append(f"Label-prior baseline (no pixels): {fmt_score(baseline.mean)} macro F1.\n")
    write_csv(csv_path, runs)
    write_text(md_path, "\n".join(lines))
    return runs, table


def _torch_threads() -> int:
    return torch.get_num_threads()


