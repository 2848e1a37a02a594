"""Are the class activation maps and the embedding right? Measured on synthetic data, whose
truth is known: where each class's green pattern lies, and each image's labels.

    python benchmarks/explain.py -o /tmp/bench-explain            # the table in docs/explain.md
    python benchmarks/explain.py -o /tmp/be --n-train 64 --epochs 1   # a smoke run

1. Synthetic data with ``generate(..., pattern_masks=True)``; a run trained on its train
   split (the demo-cpu recipe: EfficientNet-Lite0 from the bundled ImageNet weights). The
   defaults are those of ``make demo`` (800 + 200 images of 128 px, seed 0, 10 epochs), so
   the run is the demo's model.
2. Pointing game on the test split: of the true-positive (image, class) pairs of the
   trained run, the share whose Grad-CAM maximum lies inside the class's pattern region
   (maps on the last feature map and on the ``layer="auto"`` one),
   for the trained model and for a random-init model of the same backbone, against the
   area fraction of the regions (the chance of a random point).
3. Randomisation check (Adebayo et al. 2018): Spearman's rank correlation between the
   trained and the random-init maps of the same pairs.
4. k-NN probe: macro F1 of a cosine 5-NN on the pooled features (train split -> test split),
   for the trained model and for the ImageNet features of the same backbone.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from hpa_classify.config import load_config
from hpa_classify.data.layout import checked, load_dataset
from hpa_classify.data.synth import generate
from hpa_classify.evaluate.thresholds import load_thresholds
from hpa_classify.explain.cam import grad_cam, load_batch, pooled_features, stage_for
from hpa_classify.explain.checks import knn_macro_f1, pointing_game, rank_correlation
from hpa_classify.inference.runs import load_model, open_run
from hpa_classify.models.factory import build_model
from hpa_classify.train.fit import fit


def features(model, data, cfg, device, batch=32) -> np.ndarray:
    parts = []
    for s in range(0, len(data), batch):
        _, x = load_batch(data, range(s, min(s + batch, len(data))), cfg, device)
        parts.append(pooled_features(model.to(device).eval(), x).cpu().numpy())
    return np.concatenate(parts)


def multi_hot(labels: list[list[int]]) -> np.ndarray:
    y = np.zeros((len(labels), 28), np.int64)
    for i, s in enumerate(labels):
        y[i, s] = 1
    return y


def explain_checks(run, model, random, test, root, device, batch=16, layer="last") -> dict[str, float]:
    thresholds = load_thresholds(run.thresholds_path)
    cams = {"trained": [], "random": []}
    regions, rhos = [], []
    for s in range(0, len(test), batch):
        idx = list(range(s, min(s + batch, len(test))))
        _, x = load_batch(test, idx, run.cfg, device)
        with torch.inference_mode():
            probs = torch.sigmoid(model(x).float()).cpu().numpy()
        pairs = [[c for c in test.labels[i] if probs[k, c] >= thresholds[c]] for k, i in enumerate(idx)]
        _, trained = grad_cam(model, x, pairs, layer)
        _, randomised = grad_cam(random, x, pairs, layer)
        for k, i in enumerate(idx):
            for c in pairs[k]:
                mask = cv2.imread(str(root / "masks" / f"{test.ids[i]}_pattern_{c}.png"), cv2.IMREAD_UNCHANGED)
                region = cv2.resize(mask, trained[k][c].shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
                regions.append(region)
                cams["trained"].append(trained[k][c])
                cams["random"].append(randomised[k][c])
                rhos.append(rank_correlation(trained[k][c], randomised[k][c]))
    hit_t, area = pointing_game(cams["trained"], regions)
    hit_r, _ = pointing_game(cams["random"], regions)
    return {"pairs": len(regions), "pointing_trained": hit_t, "pointing_random_init": hit_r,
            "area_fraction": area,
            "empty_maps_trained": float(np.mean([np.ptp(c) == 0 for c in cams["trained"]])) if regions else 0.0,
            "empty_maps_random_init": float(np.mean([np.ptp(c) == 0 for c in cams["random"]])) if regions else 0.0,
            "spearman_median": float(np.median(rhos)) if rhos else float("nan"),
            "spearman_mean": float(np.mean(rhos)) if rhos else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--n-train", type=int, default=800)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    root, run_dir = args.out / "data", args.out / "run"
    t0 = time.time()
    if not (root / "synth.json").is_file():
        generate(root, n_train=args.n_train, n_test=args.n_test, size=args.size, seed=args.seed,
                 min_per_class=2 if args.n_test >= 100 else 0, pattern_masks=True)
    train = checked(load_dataset(root))
    test = checked(load_dataset(root / "test_labels.csv", root / "test"))
    if not (run_dir / "checkpoints" / "best.ckpt").is_file():
        cfg = load_config("demo-cpu", [f"data.size={args.size}", f"train.epochs={args.epochs}",
                                       "data.num_workers=0", "evaluate.pr_figures=false"])
        fit(cfg, train, run_dir, force=True)
    t_train = time.time() - t0
    run = open_run(run_dir)
    model = load_model(run, device)
    random = build_model(run.cfg.model.name, "none", channels=run.cfg.data.channels).to(device).eval()
    imagenet = build_model(run.cfg.model.name, "bundled", channels=run.cfg.data.channels).to(device).eval()
    result = {}
    for layer in ("last", "auto"):
        checks = explain_checks(run, model, random, test, root, device, layer=layer)
        result.update({f"{k}_{layer}" if k != "pairs" else k: v for k, v in checks.items()})
        stage = stage_for(model, args.size, layer)
        result[f"feature_map_side_{layer}"] = args.size // int(model.feature_info[-1 if stage is None else stage]["reduction"])
    ytr, yte = multi_hot(train.labels), multi_hot(test.labels)
    for name, net in (("trained", model), ("imagenet", imagenet), ("random_init", random)):
        result[f"knn_f1_{name}"] = knn_macro_f1(features(net, train, run.cfg, device), ytr,
                                                features(net, test, run.cfg, device), yte)
    result.update(n_train=args.n_train, n_test=args.n_test, size=args.size, epochs=args.epochs,
                  seconds_data_and_training=round(t_train, 1), seconds_total=round(time.time() - t0, 1),
                  device=str(device))
    (args.out / "explain_bench.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
