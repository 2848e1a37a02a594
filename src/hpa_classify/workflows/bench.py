"""Quality benchmark, its recipes and its table: held-out macro F1 of the default recipe and of its ablations.

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

import logging
import shutil
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from hpa_classify.data.synth import generate, matches, written_here
from hpa_classify.errors import ConfigError, DataError
from hpa_classify.progress import Progress
from hpa_classify.render.tables import markdown_table as render_markdown

log = logging.getLogger(__name__)

__all__ = [
    "ABLATIONS",
    "FULL",
    "QUICK",
    "Ablation",
    "BenchSpec",
    "Spread",
    "markdown_table",
    "parse_seeds",
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
    synth_version : int
        Version of the synthetic data (:func:`hpa_classify.data.synth.generate`);
        in version 2 only the yellow ER channel tells some classes apart.
    only : tuple of str
        Slugs of the recipes to run (``default``, ``rgb-only``, ...); empty: all.
    """

    n_train: int = 800
    n_test: int = 600
    size: int = 128
    data_seed: int = 0
    min_per_class: int = 20
    epochs: int = 10
    seeds: tuple[int, ...] = (0, 1, 2)
    ablation_seeds: tuple[int, ...] = (0, 1, 2)
    preset: str = "demo-cpu"
    overrides: tuple[str, ...] = ()
    synth_version: int = 2
    only: tuple[str, ...] = ()

    def runs(self, ablation: Ablation) -> bool:
        """Whether the benchmark runs ``ablation`` (see :attr:`only`)."""
        return not self.only or ablation.slug in self.only

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


def fmt_score(x: float) -> str:
    return f"{x:.3f}"


def markdown_table(runs: pd.DataFrame, ablations: Sequence[Ablation] = ABLATIONS) -> str:
    """The summary table, one row per ablation, from the per-run scores.

    ``runs`` has columns ``ablation``, ``seed`` and ``macro_f1`` (held out).
    "Default better by more than the spread" means: the default's mean exceeds
    the ablation's by more than the larger of the two seed standard deviations.
    "Default better on" counts, over the seeds both have, those where the
    default's run scores higher than the ablation's run with the same seed,
    and the smallest of those paired differences.
    """
    default_rows = runs[runs["ablation"] == "default"]
    default = summarize(default_rows["macro_f1"])
    default_by_seed = dict(zip(default_rows["seed"], default_rows["macro_f1"]))
    rows_out = []
    for ab in ablations:
        rows = runs[runs["ablation"] == ab.name]
        if rows.empty:
            continue
        s = summarize(rows["macro_f1"])
        seeds = ", ".join(str(int(x)) for x in rows["seed"])
        std = f" ± {fmt_score(s.std)}" if s.n > 1 else " (one seed)"
        verdict = ["", "", ""] if ab.name == "default" else _against_default(
            default, s, [(default_by_seed[k], f) for k, f in zip(rows["seed"], rows["macro_f1"]) if k in default_by_seed]
        )
        rows_out.append([ab.name, ab.change, seeds, f"{fmt_score(s.mean)}{std}",
                         f"{fmt_score(s.min)}-{fmt_score(s.max)}", *verdict])
    return render_markdown(TABLE_HEADER, rows_out) + "\n"


#: The columns of the benchmark's summary table.
TABLE_HEADER = [
    "recipe", "change", "seeds", "held-out macro F1, mean ± std", "min-max", "default minus this",
    "default better by more than the spread", "default better on",
]


def _against_default(default: Spread, s: Spread, pairs: list[tuple[float, float]]) -> list[str]:
    """The difference, the spread verdict and the paired count of one ablation against the default."""
    wins = sum(d > f for d, f in pairs)
    paired = f"{wins} of {len(pairs)} seed{'s' if len(pairs) != 1 else ''}" if pairs else "n/a (no shared seed)"
    if pairs:
        paired += f" (smallest gap {min(d - f for d, f in pairs):+.3f})"
    d = default.mean - s.mean
    spread = max(default.std, s.std)
    if default.n == 1 and s.n == 1:
        verdict = "n/a (one seed each)"
    else:
        verdict = f"{'yes' if d > spread else 'no'} (spread {fmt_score(spread)})"
    return [f"{d:+.3f}", verdict, paired]


def with_changes(
    spec: BenchSpec,
    epochs: int | None = None,
    seeds: str | None = None,
    ablation_seeds: str | None = None,
    overrides: Sequence[str] = (),
    only: str | None = None,
    synth_version: int | None = None,
) -> BenchSpec:
    """``spec`` with command-line changes applied (epochs, seeds, extra overrides, recipes, data version)."""
    changes: dict[str, Any] = {}
    if only is not None:
        slugs = tuple(s.strip() for s in only.split(",") if s.strip())
        known = [a.slug for a in ABLATIONS]
        unknown = [s for s in slugs if s not in known]
        if unknown or not slugs:
            raise ConfigError(f"--only takes recipes among {', '.join(known)}; got '{only}'")
        changes["only"] = slugs
    if synth_version is not None:
        changes["synth_version"] = synth_version
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


def cached_synth(
    folder: Path, *, n_train: int, n_test: int, size: int, seed: int, min_per_class: int, version: int,
    masks: bool = False, progress: Progress | None = None,
) -> Path:
    """A benchmark's synthetic dataset in ``folder``: generated once, reused while its parameters match.

    A folder of other parameters that ``hpa synth`` wrote is replaced; any other is refused.
    """
    params = dict(n_train=n_train, n_test=n_test, size=size, seed=seed, min_per_class=min_per_class)
    if matches(folder, **params, version=version) and (not masks or (folder / "masks" / "cell_labels.csv").is_file()):
        log.info("reusing synthetic data in %s", folder)
        return folder
    if folder.exists() and not written_here(folder):
        raise DataError(f"{folder}: exists and was not written by 'hpa synth'; choose another folder")
    if folder.exists():
        shutil.rmtree(folder)
    log.info("generating %d + %d synthetic images into %s", n_train, n_test, folder)
    generate(folder, **params, version=version, masks=masks, progress=progress)
    return folder
