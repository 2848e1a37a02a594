"""Speed of the explanations and embeddings against prediction, and of a 10,000-point UMAP.

    python benchmarks/explain_speed.py --run RUN --data DATA_CSV --images DIR

Times, on the same images and the same device, each repeated (median printed, with the
range): ``predict_probs`` with the run's own TTA setting (what ``hpa predict`` runs) and
with one view; ``explain_run`` (``hpa explain``: Grad-CAM of the predicted classes and
the HTML page); ``embed_dataset`` without and with its UMAP (``hpa embed``). The repeats
are interleaved, so a change in the machine's load falls on every method alike. Then
one UMAP of 10,000 points of the run's feature width (the images' features repeated,
each copy with a little noise), as ``hpa embed`` computes it. ``--umap-only`` times
only that, twice in one process: the first call includes numba's compilation, which a
fresh ``hpa embed`` pays.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hpa_classify.data.layout import checked, load_dataset
from hpa_classify.explain.embed import compute_embedding, embed_dataset, umap_2d
from hpa_classify.explain.page import explain_run
from hpa_classify.inference.predict import predict_probs
from hpa_classify.inference.runs import load_model, open_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True, help="CSV (or Kaggle root) of the images")
    ap.add_argument("--images", type=Path, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--umap-points", type=int, default=10_000)
    ap.add_argument("--umap-only", action="store_true",
                    help="time only the UMAP: its first call in this process (numba compiles then) and a second")
    args = ap.parse_args()
    device = torch.device("cpu")
    data = checked(load_dataset(args.data, images=args.images))
    run = open_run(args.run)
    model = load_model(run, device)
    n = len(data)
    if args.umap_only:
        _umap(model, data, run.cfg, device, args.umap_points, calls=2)
        return
    work = Path(tempfile.mkdtemp(prefix="explain-speed-"))
    methods = {
        f"predict, TTA {run.cfg.predict.tta} (hpa predict)": lambda k: predict_probs(
            model, data, run.cfg, tta=run.cfg.predict.tta, device=device),
        "predict, 1 view": lambda k: predict_probs(model, data, run.cfg, tta=1, device=device),
        "explain (hpa explain)": lambda k: explain_run(args.run, data, work / f"ex{k}", device=device),
        "embed, no UMAP": lambda k: embed_dataset(args.run, data, work / f"em{k}", with_umap=False, device=device),
        "embed with UMAP (hpa embed)": lambda k: embed_dataset(args.run, data, work / f"eu{k}", device=device),
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    for k in range(args.repeats):
        for name, fn in methods.items():
            t0 = time.perf_counter()
            fn(k)
            times[name].append(time.perf_counter() - t0)
    print(f"{n} images of {run.cfg.data.size} px, {run.cfg.model.name}, {torch.get_num_threads()} torch threads, "
          f"{args.repeats} repeats")
    print("| method | median s | images/s | range s |\n| --- | ---: | ---: | --- |")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {med:.1f} | {n / med:.1f} | {min(ts):.1f}-{max(ts):.1f} |")
    _umap(model, data, run.cfg, device, args.umap_points, calls=1)


def _umap(model: torch.nn.Module, data: object, cfg: object, device: torch.device, points: int, calls: int) -> None:
    """Time ``umap_2d`` on ``points`` copies of the images' features, each with a little noise."""
    feats = compute_embedding(model, data, cfg, 16, device, None).features
    rng = np.random.default_rng(0)
    reps = -(-points // len(feats))
    big = np.tile(feats, (reps, 1))[:points]
    big = big + rng.normal(0, 0.05 * float(feats.std()), big.shape).astype(big.dtype)
    for call in range(1, calls + 1):
        t0 = time.perf_counter()
        umap_2d(big, seed=0)
        print(f"UMAP of {len(big)} points x {big.shape[1]} features, call {call} in this process: "
              f"{time.perf_counter() - t0:.1f} s")

if __name__ == "__main__":
    main()
