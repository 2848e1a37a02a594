"""Quality benchmark: held-out macro F1 of the default recipe and of its ablations.

Every recipe trains on one fixed synthetic dataset (generated once into a cache
folder), tunes its per-class thresholds on its validation split and is scored
on the synthetic test split (``test_labels.csv``), which no run sees while
training. The rows are the default recipe (the ``demo-cpu`` preset) and one
change each:

* random init instead of ImageNet weights (``model.pretrained=none``);
* RGB only, the yellow ER channel dropped (``data.channels=[red, green, blue]``);
* a fixed 0.5 threshold instead of per-class thresholds, scored from the
  default runs' own test probabilities (no training of its own);
* focal loss instead of BCE (``train.loss=focal``);
* no augmentation (``augment.enabled=false``).

The default and random init run over several seeds (``seeds``), the other
ablations over ``ablation_seeds``; a seed sets the weight init, the batch
order, the augmentations and the train/validation split, never the data.

Examples
--------
>>> [a.name for a in ABLATIONS][:3]
['default', 'random init', 'RGB only']
>>> parse_seeds("0, 1,2")
(0, 1, 2)
>>> summarize([0.5, 0.7]).mean
0.6
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from hpa_classify.config import Config, config_to_yaml, load_config
from hpa_classify.errors import ConfigError
from hpa_classify.fileio import write_csv, write_text

log = logging.getLogger(__name__)

__all__ = [
    "ABLATIONS",
    "FULL",
    "QUICK",
    "Ablation",
    "BenchResult",
    "BenchSpec",
    "Spread",
    "markdown_table",
    "parse_seeds",
    "run_quality",
    "summarize",
    "with_changes",
]


@dataclass(frozen=True)
class Ablation:
    """One row of the table: a change to the default recipe.

    Attributes
    ----------
    name : str
        Row label.
    change : str
        What differs from the default, as config overrides or in words.
    overrides : tuple of str
        ``key=value`` overrides on top of the benchmark's base config.
    many_seeds : bool
        Run over :attr:`BenchSpec.seeds` (else :attr:`BenchSpec.ablation_seeds`).
    post_hoc : bool
        No training of its own: scored from the default runs' test
        probabilities at a fixed 0.5 threshold.
    """

    name: str
    change: str
    overrides: tuple[str, ...] = ()
    many_seeds: bool = False
    post_hoc: bool = False

    @property
    def slug(self) -> str:
        """The name as a folder name: ``random init`` -> ``random-init``."""
        return "".join(c if c.isalnum() else "-" for c in self.name.lower()).strip("-")


ABLATIONS: tuple[Ablation, ...] = (
    Ablation(
        "default",
        "demo-cpu preset: ImageNet weights, 4 channels, BCE, augmentation, per-class thresholds",
        many_seeds=True,
    ),
    Ablation("random init", "model.pretrained=none", ("model.pretrained=none",), many_seeds=True),
    Ablation("RGB only", "data.channels=[red, green, blue] (yellow ER dropped)", ("data.channels=[red, green, blue]",)),
    Ablation(
        "fixed 0.5 threshold",
        "evaluate.threshold_method=fixed, from the default runs' test probabilities",
        post_hoc=True,
        many_seeds=True,
    ),
    Ablation("focal loss", "train.loss=focal", ("train.loss=focal",)),
    Ablation("no augmentation", "augment.enabled=false", ("augment.enabled=false",)),
)


@dataclass(frozen=True)
class BenchSpec:
    """What the benchmark trains on and how long.

    Attributes
    ----------
    n_train, n_test, size, data_seed, min_per_class : int
        The synthetic dataset (:func:`hpa_classify.data.synth.generate`).
    epochs : int
        Training epochs of every run.
    seeds : tuple of int
        Seeds of the default recipe and of random init.
    ablation_seeds : tuple of int
        Seeds of the other trained ablations.
    preset : str
        The default recipe.
    overrides : tuple of str
        Config overrides applied to every run, before each ablation's own.
    """

    n_train: int = 800
    n_test: int = 200
    size: int = 128
    data_seed: int = 0
    min_per_class: int = 2
    epochs: int = 5
    seeds: tuple[int, ...] = (0, 1, 2)
    ablation_seeds: tuple[int, ...] = (0, 1, 2)
    preset: str = "demo-cpu"
    overrides: tuple[str, ...] = ()

    def seeds_for(self, ablation: Ablation) -> tuple[int, ...]:
        return self.seeds if ablation.many_seeds else self.ablation_seeds

    def base_overrides(self) -> list[str]:
        # the precision-recall figures only slow the reports down; scores are unchanged
        return [
            f"data.size={self.size}",
            f"train.epochs={self.epochs}",
            "evaluate.pr_figures=false",
            *self.overrides,
        ]


#: The full benchmark: sized for 2 CPU cores.
FULL = BenchSpec()
#: A smoke run for the tests: tiny images, one epoch, one seed.
QUICK = BenchSpec(
    n_train=48,
    n_test=16,
    size=64,
    min_per_class=0,
    epochs=1,
    seeds=(0,),
    ablation_seeds=(0,),
    overrides=("data.batch_size=16", "predict.tta=1"),
)


def parse_seeds(text: str) -> tuple[int, ...]:
    """Seeds from ``"0,1,2"``; a :class:`ConfigError` for anything else."""
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ConfigError(f"seeds must be comma-separated integers, got '{text}'") from None
    if not seeds:
        raise ConfigError("at least one seed is needed")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must differ, got '{text}'")
    return seeds


@dataclass(frozen=True)
class Spread:
    """Mean, sample standard deviation (0 for one value), min and max of scores."""

    n: int
    mean: float
    std: float
    min: float
    max: float


def summarize(values: Sequence[float]) -> Spread:
    """The :class:`Spread` of ``values`` (at least one)."""
    vals = [float(v) for v in values]
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return Spread(len(vals), statistics.fmean(vals), std, min(vals), max(vals))


@dataclass
class BenchResult:
    """What :func:`run_quality` measured and wrote."""

    runs: pd.DataFrame
    table: str
    markdown_path: Path
    csv_path: Path
    wall_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def markdown_table(runs: pd.DataFrame, ablations: Sequence[Ablation] = ABLATIONS) -> str:
    """The summary table, one row per ablation, from the per-run scores.

    ``runs`` has columns ``ablation``, ``seed`` and ``macro_f1`` (held out).
    "Default better by more than the spread" means: the default's mean exceeds
    the ablation's by more than the larger of the two seed standard deviations.
    "Default better on" counts, over the seeds both have, those where the
    default's run scores higher than the ablation's run with the same seed.
    """
    default_rows = runs[runs["ablation"] == "default"]
    default = summarize(default_rows["macro_f1"])
    default_by_seed = dict(zip(default_rows["seed"], default_rows["macro_f1"]))
    lines = [
        "| recipe | change | seeds | held-out macro F1, mean ± std | min-max | default minus this "
        "| default better by more than the spread | default better on |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for ab in ablations:
        rows = runs[runs["ablation"] == ab.name]
        if rows.empty:
            continue
        s = summarize(rows["macro_f1"])
        seeds = ", ".join(str(int(x)) for x in rows["seed"])
        std = f" ± {_fmt(s.std)}" if s.n > 1 else " (one seed)"
        if ab.name == "default":
            diff, verdict, paired = "", "", ""
        else:
            pairs = [(default_by_seed[k], f) for k, f in zip(rows["seed"], rows["macro_f1"]) if k in default_by_seed]
            wins = sum(d > f for d, f in pairs)
            paired = f"{wins} of {len(pairs)} seed{'s' if len(pairs) != 1 else ''}" if pairs else "n/a (no shared seed)"
            d = default.mean - s.mean
            spread = max(default.std, s.std)
            diff = f"{d:+.3f}"
            if default.n == 1 and s.n == 1:
                verdict = "n/a (one seed each)"
            else:
                verdict = f"{'yes' if d > spread else 'no'} (spread {_fmt(spread)})"
        lines.append(
            f"| {ab.name} | {ab.change} | {seeds} | {_fmt(s.mean)}{std} | "
            f"{_fmt(s.min)}-{_fmt(s.max)} | {diff} | {verdict} | {paired} |"
        )
    return "\n".join(lines) + "\n"


def _synth_matches(folder: Path, params: dict[str, Any]) -> bool:
    meta = folder / "synth.json"
    try:
        found = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return bool(found.get("complete")) and all(found.get(k) == v for k, v in params.items())


def ensure_data(spec: BenchSpec, cache: Path, progress: bool = True) -> Path:
    """The benchmark's synthetic dataset in ``cache``: generated once, reused after."""
    from hpa_classify.data.synth import generate

    params = {
        "n_train": spec.n_train,
        "n_test": spec.n_test,
        "size": spec.size,
        "seed": spec.data_seed,
        "min_per_class": spec.min_per_class,
    }
    folder = Path(cache) / f"synth-{spec.n_train}-{spec.n_test}-{spec.size}px-seed{spec.data_seed}"
    if _synth_matches(folder, params):
        log.info("reusing synthetic data in %s", folder)
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    log.info("generating %d + %d synthetic images into %s", spec.n_train, spec.n_test, folder)
    generate(
        folder,
        n_train=spec.n_train,
        n_test=spec.n_test,
        size=spec.size,
        seed=spec.data_seed,
        min_per_class=spec.min_per_class,
        progress=progress,
    )
    return folder


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
        if ab.post_hoc:
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
    console: Console | None = None,
    progress: bool = True,
) -> BenchResult:
    """Train every recipe of :data:`ABLATIONS`, score it held out, write the table.

    Parameters
    ----------
    spec : BenchSpec
        Data, epochs and seeds (:data:`FULL` or :data:`QUICK`).
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

    Returns
    -------
    BenchResult
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from hpa_classify.data.layout import checked, load_dataset
    from hpa_classify.evaluate.run import evaluate_run
    from hpa_classify.runs import open_run
    from hpa_classify.train.run import train

    import torch

    console = console or Console()
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
    columns = ["ablation", "seed", "macro_f1", "val_macro_f1", "baseline_macro_f1", "seconds", "run"]
    bars = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=not progress,
    )
    with bars:
        task = bars.add_task("quality benchmark", total=len(plan))
        for ab, seed, cfg in plan:
            bars.update(task, description=f"{ab.name}, seed {seed}")
            run_dir = out / "runs" / ab.slug / f"seed{seed}"
            t1 = time.perf_counter()
            held = _finished(run_dir, cfg) if resume else None
            if held is None:
                run = train(cfg, train_ds, run_dir, force=True, progress=False)
                held = evaluate_run(run, test_ds, out_dir=run_dir / "eval-test", progress=False)
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
                "seconds": round(time.perf_counter() - t1, 1),
                "run": str(run_dir),
            }
            rows.append(row)
            if ab.name == "default":
                fixed = next(a for a in ABLATIONS if a.post_hoc)
                rows.append({
                    **row,
                    "ablation": fixed.name,
                    "macro_f1": held["macro_f1_at_0.5"],
                    "val_macro_f1": val["macro_f1_at_0.5"],
                    "seconds": 0.0,
                })
            console.print(f"{ab.name}, seed {seed}: held-out macro F1 {held['macro_f1']:.3f} ({row['seconds']:.0f} s)")
            bars.advance(task)
            _write(rows, columns, spec, command, t0, load_start, csv_path, md_path)

    runs, table = _write(rows, columns, spec, command, t0, load_start, csv_path, md_path)
    return BenchResult(
        runs=runs,
        table=table,
        markdown_path=md_path,
        csv_path=csv_path,
        wall_seconds=time.perf_counter() - t0,
        extra={"data": str(data_dir)},
    )


def _write(
    rows: list[dict[str, Any]],
    columns: list[str],
    spec: BenchSpec,
    command: str,
    t0: float,
    load_start: tuple[float, float, float],
    csv_path: Path,
    md_path: Path,
) -> tuple[pd.DataFrame, str]:
    order = {a.name: i for i, a in enumerate(ABLATIONS)}
    runs = pd.DataFrame(rows, columns=columns)
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
        f"Data: {spec.n_train} train + {spec.n_test} test synthetic images, {spec.size} px, data seed "
        f"{spec.data_seed}. Recipe: preset `{spec.preset}`, {spec.epochs} epochs"
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
        lines.append(f"Label-prior baseline (no pixels): {_fmt(baseline.mean)} macro F1.\n")
    write_csv(csv_path, runs)
    write_text(md_path, "\n".join(lines))
    return runs, table


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def with_changes(
    spec: BenchSpec,
    epochs: int | None = None,
    seeds: str | None = None,
    ablation_seeds: str | None = None,
    overrides: Sequence[str] = (),
) -> BenchSpec:
    """``spec`` with command-line changes applied (epochs, seeds, extra overrides)."""
    changes: dict[str, Any] = {}
    if epochs is not None:
        if epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {epochs}")
        changes["epochs"] = epochs
    if seeds is not None:
        changes["seeds"] = parse_seeds(seeds)
    if ablation_seeds is not None:
        changes["ablation_seeds"] = parse_seeds(ablation_seeds)
    if overrides:
        changes["overrides"] = (*spec.overrides, *overrides)
    return replace(spec, **changes)
