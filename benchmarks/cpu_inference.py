"""CPU inference benchmark: ``hpa predict`` images per second with PyTorch and with onnxruntime.

One command::

    python benchmarks/cpu_inference.py                  # 128 and 512 px, EfficientNet-Lite0
    python benchmarks/cpu_inference.py --sizes 128 --model resnet18

For each input side it trains a run for one step on synthetic 512 px images
(the weights do not change the speed), then times, in one process and
alternating between the backends so that a busy machine slows both alike:

* ``predict``: :func:`hpa_classify.workflows.submission.predict_run`, what ``hpa predict``
  calls after loading the data: PNG decoding and resizing (in
  ``data.num_workers`` worker processes), the model, TTA x1, thresholds, the
  submission and probability files;
* ``model only``: the network alone on a random batch of 32.

The ONNX model is exported once before timing. Rates are medians of
``--repeats`` rounds; torch uses all cores (``torch.get_num_threads()``),
onnxruntime its default (one per physical core). Each ``predict`` round loads
the model as ``hpa predict`` does (PyTorch checkpoint, or an onnxruntime
session on the exported file).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="128,512", help="input sides, px (default 128,512)")
    p.add_argument("--model", default="tf_efficientnet_lite0", help="timm model name")
    p.add_argument("--n", type=int, default=64, help="images predicted per round (default 64)")
    p.add_argument("--repeats", type=int, default=3, help="rounds; the median is reported")
    p.add_argument("--workers", type=int, default=2, help="data.num_workers of the run (default 2)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="torch threads (default: all cores); onnxruntime keeps its default")
    p.add_argument("--work", type=Path, help="folder for data and runs (default: a temp folder)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    from hpa_classify.config import load_config
    from hpa_classify.data.layout import load_dataset
    from hpa_classify.data.synth import generate
    from hpa_classify.inference.onnx import load_predictor
    from hpa_classify.workflows.submission import predict_run
    from hpa_classify.inference.runs import open_run
    from hpa_classify.train.single import train_run as train

    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="hpa-bench-cpu-")
        args.work = Path(tmp.name)
    root = args.work / f"synth512-{args.n}"
    if not (root / "train.csv").is_file():
        print(f"generating {args.n} synthetic images at 512 px ...", file=sys.stderr)
        generate(root, n_train=args.n, n_test=0, size=512, seed=0, min_per_class=0)
    data = load_dataset(root)

    rows = []
    load_before = os.getloadavg()[0]
    for size in [int(s) for s in args.sizes.split(",")]:
        run_dir = args.work / f"run-{args.model}-{size}"
        if not (run_dir / "thresholds.json").is_file():
            print(f"training {args.model} at {size} px for one step ...", file=sys.stderr)
            cfg = load_config(None, [
                f"model.name={args.model}", "model.pretrained=none", f"data.size={size}",
                "data.batch_size=8", "data.num_workers=0", "train.epochs=1", "train.limit_train_batches=1",
                "predict.tta=1", "evaluate.pr_figures=false", "train.accelerator=cpu",
            ])
            train(cfg, data, run_dir, force=True)
            cfg_path = run_dir / "config.yaml"
            cfg_path.write_text(cfg_path.read_text().replace("num_workers: 0", f"num_workers: {args.workers}"))
        run = open_run(run_dir)
        models = {"torch": load_predictor(run, "cpu", "torch"), "onnx": load_predictor(run, "cpu", "onnx")}
        x = torch.randn(32, len(run.cfg.data.channels), size, size)
        rates: dict[str, dict[str, list[float]]] = {b: {"predict": [], "model": []} for b in models}
        for backend in models:  # warm-up: worker start, first-call allocations
            predict_run(run, data, args.work / "sub.csv", tta=1, backend=backend)
        for _ in range(args.repeats):
            for backend, model in models.items():
                t0 = time.perf_counter()
                predict_run(run, data, args.work / f"sub-{backend}.csv", tta=1, backend=backend)
                rates[backend]["predict"].append(len(data) / (time.perf_counter() - t0))
                with torch.inference_mode():
                    t0 = time.perf_counter()
                    model(x)
                    rates[backend]["model"].append(len(x) / (time.perf_counter() - t0))
        for backend in models:
            rows.append((size, backend, statistics.median(rates[backend]["predict"]),
                         statistics.median(rates[backend]["model"])))
        print(f"{size} px done", file=sys.stderr)
    load_after = os.getloadavg()[0]

    print(f"\nCPU inference, {args.model}, {os.cpu_count()} cores, torch {args.threads} threads, onnxruntime default threads, "
          f"{args.n} synthetic 512 px PNG samples, TTA x1, data.num_workers={args.workers}; median of "
          f"{args.repeats} rounds; load average {load_before:.1f} before and {load_after:.1f} after\n")
    print("| input side | backend | hpa predict (img/s) | model only, batch 32 (img/s) |")
    print("| ---: | --- | ---: | ---: |")
    for size, backend, pred, model in rows:
        print(f"| {size} px | {backend} | {pred:.1f} | {model:.1f} |")
    by = {(s, b): (p_, m) for s, b, p_, m in rows}
    for size in sorted({r[0] for r in rows}):
        t, o = by[(size, "torch")], by[(size, "onnx")]
        print(f"\n{size} px: onnxruntime / torch = {o[0] / t[0]:.2f}x end to end, {o[1] / t[1]:.2f}x model only", end="")
    print()
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
