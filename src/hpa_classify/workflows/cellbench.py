"""The per-cell benchmark: broadcast, cell-crop model and their combination, on synthetic fields with per-cell truth.

For every seed: a field classifier on the training fields, a cell classifier
on the crops of their cells (labelled with the field's labels only), then
every cell of the test fields scored three ways (:mod:`~hpa_classify.cells.classify`)
and measured with the HPA 2021 metric (:mod:`~hpa_classify.cells.judge`)
against each cell's own labels. The cells of both splits come from the
package's own segmentation (``hpa segment``), not from the true masks, so a
cell that is missed or cut wrongly costs what it would on real fields.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from hpa_classify.cells.batch import segment_dataset
from hpa_classify.cells.classify import DEFAULT_CELL_WEIGHT, METHODS
from hpa_classify.cells.judge import score_table
from hpa_classify.cells.predict import cell_table
from hpa_classify.classes import CLASS_NAMES_2021
from hpa_classify.config import load_config
from hpa_classify.data.layout import Dataset, checked, load_dataset
from hpa_classify.errors import ConfigError
from hpa_classify.fileio import write_csv, write_text
from hpa_classify.inference.members import ensemble_probs
from hpa_classify.inference.runs import Run, load_model, open_run
from hpa_classify.progress import Progress, open_task
from hpa_classify.train.single import train_run
from hpa_classify.workflows.bench import cached_synth, summarize
from hpa_classify.workflows.cells import train_cells

log = logging.getLogger(__name__)

__all__ = ["CELL_FULL", "CELL_QUICK", "CellBenchSpec", "run_cell_bench"]


@dataclass(frozen=True)
class CellBenchSpec:
    """Data, models and seeds of the per-cell benchmark."""

    n_train: int = 400
    n_test: int = 100
    field_px: int = 256  # side of the synthetic fields
    data_seed: int = 0
    field_size: int = 128  # input of the field classifier
    crop_size: int = 64  # input of the cell classifier
    field_epochs: int = 5
    cell_epochs: int = 3
    seeds: tuple[int, ...] = (0, 1, 2)
    weight: float = DEFAULT_CELL_WEIGHT
    overrides: tuple[str, ...] = ()

    def check(self) -> None:
        if self.n_train < 8 or self.n_test < 1:
            raise ConfigError(f"the benchmark needs at least 8 training fields and 1 test field, got {self.n_train}, {self.n_test}")
        if not self.seeds:
            raise ConfigError("the benchmark needs at least one seed")
        if not 0.0 <= self.weight <= 1.0:
            raise ConfigError(f"the cell weight must be in 0-1, got {self.weight}")


#: What ``hpa bench cells`` runs (sized for about half an hour on 2 CPU cores).
CELL_FULL = CellBenchSpec()
#: A smoke run: a few small fields, one epoch, one seed.
CELL_QUICK = CellBenchSpec(n_train=24, n_test=6, field_px=128, field_size=64, crop_size=32,
                           field_epochs=1, cell_epochs=1, seeds=(0,))


def _config(spec: CellBenchSpec, seed: int, size: int, epochs: int, name: str) -> Any:
    return load_config("demo-cpu", [f"seed={seed}", f"data.size={size}", f"train.epochs={epochs}",
                                    f"name={name}", *spec.overrides])


def _field_run(spec: CellBenchSpec, seed: int, train: Dataset, run_dir: Path, progress: Progress | None) -> Run:
    if (run_dir / "thresholds.json").is_file():
        return open_run(run_dir)
    cfg = _config(spec, seed, spec.field_size, spec.field_epochs, f"cells-bench-field-s{seed}")
    return train_run(cfg, train, run_dir, force=True, progress=progress)


def _cell_run(spec: CellBenchSpec, seed: int, train: Dataset, run_dir: Path, crops: Path,
              progress: Progress | None) -> Run:
    if (run_dir / "cells.json").is_file():
        return open_run(run_dir)
    cfg = _config(spec, seed, spec.crop_size, spec.cell_epochs, f"cells-bench-cell-s{seed}")
    train_cells(cfg, train, run_dir, crops=crops, force=True, progress=progress)
    return open_run(run_dir)


def _table(rows: list[dict[str, Any]]) -> str:
    frame = pd.DataFrame(rows)
    base = frame[frame.method == "broadcast"].set_index("seed")["map"]
    lines = ["| method | seeds | mAP (2021 metric), mean ± std | min-max | minus broadcast | "
             "better than broadcast by more than the spread | better on |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    base_spread = summarize(base.tolist())
    for method in METHODS:
        part = frame[frame.method == method].set_index("seed")["map"]
        if part.empty:
            continue
        s = summarize(part.tolist())
        seeds = ", ".join(str(k) for k in part.index)
        cells = [method, seeds, f"**{s.mean:.3f} ± {s.std:.3f}**" if method == "combined" else f"{s.mean:.3f} ± {s.std:.3f}",
                 f"{s.min:.3f}-{s.max:.3f}"]
        if method == "broadcast":
            cells += ["", "", ""]
        else:
            gaps = [part[k] - base[k] for k in part.index if k in base.index]
            spread = max(s.std, base_spread.std)
            diff = s.mean - base_spread.mean
            cells += [f"{diff:+.3f}", f"{'yes' if diff > spread else '**no**'} (spread {spread:.3f})",
                      f"{sum(g > 0 for g in gaps)} of {len(gaps)} seeds (smallest gap {min(gaps):+.3f})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _per_class(rows: list[dict[str, Any]]) -> str:
    frame = pd.DataFrame(rows)
    lines = ["| class | true cells | " + " | ".join(m for m in METHODS if m in set(frame.method)) + " |",
             "| --- | --- |" + " --- |" * frame.method.nunique()]
    for c, name in enumerate(CLASS_NAMES_2021):
        col = f"ap_{c}"
        n_true = int(frame[f"n_true_{c}"].iloc[0])
        if n_true == 0:
            continue
        means = [frame[frame.method == m][col].mean() for m in METHODS if m in set(frame.method)]
        lines.append(f"| {c} {name} | {n_true} | " + " | ".join(f"{v:.3f}" for v in means) + " |")
    return "\n".join(lines)


def run_cell_bench(
    spec: CellBenchSpec,
    out: str | os.PathLike[str],
    command: str = "",
    progress: Progress | None = None,
) -> tuple[pd.DataFrame, str, Path]:
    """Train and score every seed; write ``results.csv`` and ``cells.md`` into ``out``.

    Finished runs in ``out/runs`` are kept (a run cut short is trained again).
    Returns the per-run rows, the Markdown table and the path of ``cells.md``.
    """
    spec.check()
    out = Path(out)
    t0 = time.perf_counter()
    data_dir = cached_synth(out / "data", n_train=spec.n_train, n_test=spec.n_test, size=spec.field_px,
                            seed=spec.data_seed, min_per_class=0, version=2, masks=True, progress=progress)
    train = checked(load_dataset(data_dir, prefer="train", require_labels=True))
    test = checked(load_dataset(data_dir / "test_labels.csv", images=data_dir / "test"))
    test_masks = out / "test-masks"
    segment_dataset(test, test_masks, progress=progress)
    rows: list[dict[str, Any]] = []
    whole = open_task(progress, "per-cell benchmark", len(spec.seeds))
    for seed in spec.seeds:
        t_seed = time.perf_counter()
        field = _field_run(spec, seed, train, out / "runs" / f"field-s{seed}", progress)
        cell = _cell_run(spec, seed, train, out / "runs" / f"cell-s{seed}", out / "crops", progress)
        probs = ensemble_probs([field], test, tta=1)
        table = cell_table(test, test_masks, probs, (load_model(cell), cell.cfg), tta=1, weight=spec.weight,
                           progress=progress)
        for method, result in score_table(table, test_masks, data_dir, list(table.scores)).items():
            row: dict[str, Any] = {"seed": seed, "method": method, "map": result.mean_ap,
                                   "cells": len(table), "seconds": round(time.perf_counter() - t_seed, 1)}
            row.update({f"ap_{c}": a for c, a in enumerate(result.ap)})
            row.update({f"n_true_{c}": n for c, n in enumerate(result.n_true)})
            rows.append(row)
        whole.advance(1)
        log.info("seed %d: %s", seed, ", ".join(f"{r['method']} {r['map']:.3f}" for r in rows[-len(table.scores):]))
    whole.close()
    minutes = (time.perf_counter() - t0) / 60
    table_md = _table(rows)
    text = "\n\n".join([
        "# Per-cell benchmark (HPA 2021 metric, synthetic version 2 fields)",
        f"Command: `{command or 'hpa bench cells'}`; wall time {minutes:.1f} min; {os.cpu_count()} CPU cores.",
        "Spec: " + ", ".join(f"{k}={v}" for k, v in asdict(spec).items()),
        table_md,
        "## Average precision per class (mean over seeds)",
        _per_class(rows),
    ]) + "\n"
    write_csv(out / "results.csv", pd.DataFrame(rows))
    md = write_text(out / "cells.md", text)
    return pd.DataFrame(rows), table_md, md


def with_changes(spec: CellBenchSpec, seeds: str | None = None, overrides: list[str] | None = None,
                 **numbers: int | None) -> CellBenchSpec:
    """``spec`` with the seeds (``"0,1,2"``), config overrides and numbers given on the command line."""
    changes: dict[str, Any] = {k: v for k, v in numbers.items() if v is not None}
    if seeds:
        try:
            changes["seeds"] = tuple(int(s) for s in seeds.split(","))
        except ValueError:
            raise ConfigError(f"--seeds takes integers separated by commas, e.g. 0,1,2; got '{seeds}'") from None
    if overrides:
        changes["overrides"] = tuple(overrides)
    return replace(spec, **changes)

