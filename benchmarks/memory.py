"""Memory benchmark: peak RSS of training and prediction for 1,000 against 10,000 samples.

One command::

    python benchmarks/memory.py                 # 64 px, 1,000 and 10,000 samples
    python benchmarks/memory.py --small 500 --large 5000 --steps 3

Samples are streamed (read by the data loader as they are needed), so the
peak resident memory of a process must not grow with the dataset: the target
is less than 20% between the two sizes. Each case runs in a fresh Python
process and reports ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` plus that of
its finished children (data-loader workers) at its end.

The data: ``--small`` synthetic samples from :func:`hpa_classify.data.synth.generate`;
the large set lists ``--large`` Ids whose channel files are hard links to
those samples' files (distinct Ids and files, the same pixels), which keeps
the generation to a minute on two cores. Training runs ``--steps`` batches
of one epoch (``train.limit_train_batches``) then validates, predicts the
validation split and evaluates as every run does; prediction runs
:func:`hpa_classify.workflows.submission.predict_run` over the whole set with TTA x1.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHANNELS = ("red", "green", "blue", "yellow")


def _make_sets(work: Path, small: int, large: int, size: int) -> tuple[Path, Path]:
    from hpa_classify.data.synth import generate

    base = work / f"synth{size}-{small}"
    if not (base / "train.csv").is_file():
        print(f"generating {small} synthetic samples at {size} px ...", file=sys.stderr)
        generate(base, n_train=small, n_test=0, size=size, seed=0, min_per_class=0)
    big = work / f"linked{size}-{large}"
    if not (big / "train.csv").is_file():
        import csv

        with open(base / "train.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        (big / "train").mkdir(parents=True, exist_ok=True)
        lines = ["Id,Target"]
        for k in range(large):
            src = rows[k % len(rows)]
            new_id = f"{src['Id']}-{k // len(rows):03d}"
            for c in CHANNELS:
                dst = big / "train" / f"{new_id}_{c}.png"
                if not dst.exists():
                    os.link(base / "train" / f"{src['Id']}_{c}.png", dst)
            lines.append(f"{new_id},{src['Target']}")
        (big / "train.csv").write_text("\n".join(lines) + "\n")
    return base, big


def _case(kind: str, data: Path, out: Path, size: int, steps: int, batch: int) -> dict:
    """Run one case in this process; return its peak RSS (MiB) and seconds."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    import torch

    torch.set_num_threads(1)  # speed only: two threads on a shared two-core machine crawl
    from hpa_classify.config import load_config
    from hpa_classify.data.layout import checked, load_dataset
    from hpa_classify.workflows.submission import predict_run
    from hpa_classify.inference.runs import open_run
    from hpa_classify.train.single import train_run as train

    t0 = time.perf_counter()
    if kind == "train":
        cfg = load_config("demo-cpu", [
            f"data.size={size}", f"data.batch_size={batch}", "data.num_workers=2", "train.epochs=1",
            f"train.limit_train_batches={steps}", "predict.tta=1", "evaluate.pr_figures=false",
            "train.accelerator=cpu",
        ])
        train(cfg, checked(load_dataset(data)), out, force=True)
    else:
        ds = checked(load_dataset(data))
        predict_run(open_run(out), ds, out.parent / f"sub-{len(ds)}.csv", tta=1)
    seconds = time.perf_counter() - t0
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"rss_mib": me, "children_rss_mib": kids, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--small", type=int, default=1000)
    p.add_argument("--large", type=int, default=10000)
    p.add_argument("--size", type=int, default=64, help="image side, px (default 64)")
    p.add_argument("--steps", type=int, default=5, help="training batches per run (default 5)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--work", type=Path, help="folder for data and runs (default: a temp folder)")
    p.add_argument("--case", choices=["train", "predict"], help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.case:  # one case, in its own process
        print(json.dumps(_case(args.case, args.data, args.out, args.size, args.steps, args.batch)))
        return 0

    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="hpa-bench-mem-")
        args.work = Path(tmp.name)
    small, large = _make_sets(args.work, args.small, args.large, args.size)
    results = {}
    for kind in ("train", "predict"):
        for n, data in ((args.small, small), (args.large, large)):
            # prediction uses the run trained on the same set
            out = args.work / f"run-{n}"
            cmd = [sys.executable, __file__, "--case", kind, "--data", str(data), "--out", str(out),
                   "--size", str(args.size), "--steps", str(args.steps), "--batch", str(args.batch)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stdout + proc.stderr, file=sys.stderr)
                return 1
            results[(kind, n)] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{kind} {n}: {results[(kind, n)]}", file=sys.stderr)

    print(f"\nPeak resident memory, {args.size} px, demo-cpu model (EfficientNet-Lite0), "
          f"data.num_workers=2; each case a fresh process\n")
    print(f"| case | {args.small:,} samples (MiB) | {args.large:,} samples (MiB) | growth | "
          f"workers' peak, {args.small:,} / {args.large:,} (MiB) | seconds, {args.small:,} / {args.large:,} |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for kind, label in (("train", f"train ({args.steps} steps, then validate and evaluate)"),
                        ("predict", "predict (every sample, TTA x1)")):
        a, b = results[(kind, args.small)], results[(kind, args.large)]
        growth = (b["rss_mib"] - a["rss_mib"]) / a["rss_mib"] * 100
        print(f"| {label} | {a['rss_mib']:.0f} | {b['rss_mib']:.0f} | {growth:+.1f}% | "
              f"{a['children_rss_mib']:.0f} / {b['children_rss_mib']:.0f} | {a['seconds']:.0f} / {b['seconds']:.0f} |")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
