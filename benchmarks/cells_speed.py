"""Cells per second of the per-cell steps: cutting crops, classifying them, encoding their masks.

    python benchmarks/cells_speed.py --data ../shared/data/hpa_samples/hpa2021_fullres/labels.csv \
        --images ../shared/data/hpa_samples/hpa2021_fullres [--run CELL_RUN] [--device cuda]

The fields are segmented once (not timed: ``hpa segment`` has its own benchmark). Then,
repeated (median printed, with the range): :func:`~hpa_classify.cells.crops.cell_crops`
over every cell of every field (fields already in memory), the cell classifier on all
crops (:func:`~hpa_classify.cells.classify.crop_probs`, one view and the run's TTA), and
the competition's mask encoding of every cell (all cells of a field in one pass, as
``hpa predict --cells`` does, and one cell at a time). Without ``--run`` the classifier is
EfficientNet-Lite0 at 128 px with a fresh head: the speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from hpa_classify.cells.classify import crop_probs
from hpa_classify.cells.crops import cell_crops
from hpa_classify.cells.rle import encode_labels, encode_mask
from hpa_classify.cells.segment import segment_field
from hpa_classify.config import load_config
from hpa_classify.data.layout import checked, load_dataset
from hpa_classify.inference.runs import load_model, open_run
from hpa_classify.models.factory import build_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="CSV (or Kaggle root) of the fields")
    ap.add_argument("--images", type=Path, default=None)
    ap.add_argument("--run", type=Path, default=None, help="a cell run (hpa train --task cells)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    device = torch.device(args.device)
    data = checked(load_dataset(args.data, images=args.images))
    if args.run is not None:
        run = open_run(args.run)
        cfg, model = run.cfg, load_model(run, device)
    else:
        cfg = load_config("demo-cpu", [])
        model = build_model(cfg.model.name, "bundled", channels=cfg.data.channels).to(device).eval()
    fields = [data.read(i) for i in range(len(data))]
    labels = [segment_field(image).cells for image in fields]
    n_cells = sum(int(lab.max()) for lab in labels)
    crops = np.concatenate([cell_crops(img, lab, cfg.data.size)[1] for img, lab in zip(fields, labels)])

    def encode_one_by_one() -> None:
        for lab in labels:
            for k in range(1, int(lab.max()) + 1):
                encode_mask(lab == k)

    methods = {
        "cut crops": lambda: [cell_crops(img, lab, cfg.data.size) for img, lab in zip(fields, labels)],
        "classify, 1 view": lambda: crop_probs(model, cfg, crops, tta=1),
        f"classify, TTA {cfg.predict.tta}": lambda: crop_probs(model, cfg, crops, tta=cfg.predict.tta),
        "encode masks, one pass per field (hpa predict --cells)": lambda: [encode_labels(lab) for lab in labels],
        "encode masks, one cell at a time": encode_one_by_one,
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.repeats):
        for name, fn in methods.items():
            t0 = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
    shapes = sorted({f"{img.shape[1]} px" for img in fields})
    print(f"{len(fields)} fields ({', '.join(shapes)}), {n_cells} cells; crops of {cfg.data.size} px, "
          f"{cfg.model.name}, device {device}, {torch.get_num_threads()} torch threads, {args.repeats} repeats")
    print("| step | cells/s (median) | range | seconds (median) |")
    print("| --- | --- | --- | --- |")
    for name, ts in times.items():
        rates = [n_cells / t for t in ts]
        print(f"| {name} | {statistics.median(rates):.1f} | {min(rates):.1f}-{max(rates):.1f} | "
              f"{statistics.median(ts):.2f} |")


if __name__ == "__main__":
    main()
