"""Segmentation benchmarks: speed per core, and the overlays and counts of docs/segmentation.md.

::

    python benchmarks/segmentation.py speed                    # a 2048 px field, one core
    python benchmarks/segmentation.py speed --field DIR/ID --repeats 9
    python benchmarks/segmentation.py figures --out docs/segmentation
    python benchmarks/segmentation.py synth                     # AP on 100 synthetic fields

``speed`` pins the process to one core (OpenCV single-threaded, as in the
workers of ``hpa segment``) and times, for one field, reading the four PNGs,
segmenting, and writing the two label PNGs; each a median over ``--repeats``
runs (the machine may be shared, so the median and the spread are printed).

``figures`` segments the real samples (8 Kaggle 512 px fields and 7 full-size
fields, ``../shared/data/hpa_samples``) through the package, as ``hpa segment``
does, and writes one small overlay PNG per field (outlines on the composite,
``--side`` px) plus the counts as a Markdown table.

``synth`` writes a fixed synthetic test set with true label images
(``generate(n_train=0, n_test=100, size=512, seed=0, min_per_class=0,
masks=True, version=2)``: crowded fields of 10 to 40 cells; drawn again when the
generator's revision changes), segments it as
``hpa segment`` does and prints the average precision of nuclei and cells,
over all fields and by cell density (``--version 1`` for the sparser fields).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from hpa_classify.cells.batch import segment_dataset
from hpa_classify.cells.evaluation import evaluate_by_density
from hpa_classify.cells.masks import write_labels
from hpa_classify.cells.overlay import draw_outlines
from hpa_classify.cells.segment import SegmentSettings, segment_field
from hpa_classify.classes import CHANNELS
from hpa_classify.data.io import load_sample
from hpa_classify.data.layout import load_dataset
from hpa_classify.data.synth.writer import MASKS_DIR
from hpa_classify.workflows.bench import cached_synth

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "data" / "hpa_samples"
DEFAULT_FIELD = SAMPLES / "hpa2021_fullres" / "f0ac7116-bb99-11e8-b2b9-ac1f6b6435d0"
SETS = (("kaggle_layout", "kaggle_layout", None), ("full size", "hpa2021_fullres", "labels.csv"))


def _one_core() -> str:
    cv2.setNumThreads(0)
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"core {core}"
    return "all cores (no sched_setaffinity here)"


def _timed(fn, repeats: int) -> tuple[float, float, float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times)


def speed(field: Path, repeats: int, out: Path) -> None:
    where = _one_core()
    files = {c: Path(f"{field}_{c}.png") for c in CHANNELS}
    image = load_sample(files)
    settings = SegmentSettings()
    seg = segment_field(image, settings)  # warm up (imports, caches)
    out.mkdir(parents=True, exist_ok=True)

    def write() -> None:
        write_labels(out / "n.png", seg.nuclei)
        write_labels(out / "c.png", seg.cells)

    def everything() -> None:
        s = segment_field(load_sample(files), settings)
        write_labels(out / "n.png", s.nuclei)
        write_labels(out / "c.png", s.cells)

    rows = [
        ("read 4 PNGs", _timed(lambda: load_sample(files), repeats)),
        ("segment", _timed(lambda: segment_field(image, settings), repeats)),
        ("write 2 label PNGs", _timed(write, repeats)),
        ("read + segment + write", _timed(everything, repeats)),
    ]
    h, w = image.shape[1:]
    print(f"field {field.name}: {w}x{h} px, {seg.n_cells} cells; {where}; median of {repeats} runs")
    print("| step | median s | min s | max s |\n| --- | ---: | ---: | ---: |")
    for name, (med, lo, hi) in rows:
        print(f"| {name} | {med:.3f} | {lo:.3f} | {hi:.3f} |")
    total = rows[-1][1][0]
    print(f"\nrate: {1 / total:.2f} fields/s per core ({3600 / total:.0f} fields/h per core)")


def _thumbnail(image: np.ndarray, cells: np.ndarray, nuclei: np.ndarray, side: int) -> Image.Image:
    rgb = draw_outlines(image, cells, nuclei, max_side=side)
    return Image.fromarray(rgb).quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def figures(out: Path, side: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    print("| field | set | size px | cells found |\n| --- | --- | ---: | ---: |")
    for name, folder, csv in SETS:
        data = SAMPLES / folder
        ds = load_dataset(data / csv if csv else data)
        for sample_id, files in zip(ds.ids, ds.files):
            image = load_sample(files)
            seg = segment_field(image)
            tag = "kaggle" if folder == "kaggle_layout" else "full"
            png = out / f"{sample_id[:8]}_{tag}.png"
            _thumbnail(image, seg.cells, seg.nuclei, side).save(png, optimize=True)
            print(f"| {sample_id[:8]} | {name} | {image.shape[2]} | {seg.n_cells} |")


def synthetic(work: Path, n: int, size: int, seed: int, version: int) -> None:
    data = cached_synth(work / f"synth-{n}x{size}-seed{seed}-v{version}", n_train=0, n_test=n, size=size,
                        seed=seed, min_per_class=0, version=version, masks=True)
    ds = load_dataset(data / "test_labels.csv", images=data / "test")
    out = work / f"segmented-{n}x{size}-seed{seed}-v{version}"
    t0 = time.perf_counter()
    summary = segment_dataset(ds, out, force=True)
    seconds = time.perf_counter() - t0
    scores = evaluate_by_density(out, data / MASKS_DIR, ds.ids)
    print(f"{n} synthetic fields (version {version}) of {size} px (seed {seed}): {summary.n_cells} cells found "
          f"in {seconds:.1f} s")
    print("| fields | objects | AP@0.5 | AP@0.5:0.95 | true | found | TP@0.5 | FP@0.5 | FN@0.5 |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for group, kinds in scores.items():
        for kind, counts in kinds.items():
            m = counts.summary()
            print(f"| {group} | {kind} | {m['ap50']:.3f} | {m['map']:.3f} | {m['n_true']} | {m['n_pred']} | "
                  f"{m['tp50']} | {m['fp50']} | {m['fn50']} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed", help="time one field on one core")
    s.add_argument("--field", type=Path, default=DEFAULT_FIELD, help="DIR/ID of a field's four PNGs")
    s.add_argument("--repeats", type=int, default=7)
    s.add_argument("--out", type=Path, default=Path("/tmp/hpa-segment-speed"), help="where labels are written")
    f = sub.add_parser("figures", help="overlays and counts of the real samples")
    f.add_argument("--out", type=Path, default=ROOT / "docs" / "segmentation")
    f.add_argument("--side", type=int, default=384, help="overlay side, px")
    y = sub.add_parser("synth", help="AP on a fixed synthetic test set with true masks")
    y.add_argument("--work", type=Path, default=Path("/tmp/hpa-segment-synth"), help="folder for the data and labels")
    y.add_argument("--n", type=int, default=100, help="fields (default 100)")
    y.add_argument("--size", type=int, default=512, help="field side, px (default 512)")
    y.add_argument("--seed", type=int, default=0)
    y.add_argument("--version", type=int, default=2, choices=(1, 2), help="synthetic data version (default 2)")
    args = p.parse_args(argv)
    if args.what == "synth":
        synthetic(args.work, args.n, args.size, args.seed, args.version)
        return 0
    if not SAMPLES.is_dir():
        print(f"real HPA samples not found at {SAMPLES}", file=sys.stderr)
        return 1
    if args.what == "speed":
        speed(args.field, args.repeats, args.out)
    else:
        figures(args.out, args.side)
    return 0


if __name__ == "__main__":
    sys.exit(main())
