"""GPU benchmark: training and prediction images/s through the real pipeline against pure compute.

Run by ``benchmarks/gpu.sh`` (one command, a few minutes on one GPU)::

    bash benchmarks/gpu.sh                          # resnet34 and densenet121 at 512 px
    bash benchmarks/gpu.sh --compile                # with torch.compile (adds compile time)
    python benchmarks/gpu.py --dry-run              # the same code on the CPU, tiny, to check it runs

For each model, in one process on one GPU:

* **train, pure compute**: the network (``build_model``, channels_last) on a
  random batch normalised once and kept on the GPU (no copy in the timed
  loop), bf16 autocast, BCE loss, AdamW step;
* **train, pipeline**: what ``hpa train`` runs: ``prepare_module`` +
  ``HPADataModule`` in a Lightning ``Trainer`` with ``trainer_settings`` (the
  same precision, cuDNN benchmark and determinism) and its progress bar,
  reading a packed cache of synthetic 512 px images with the training
  augmentations on, ``data.num_workers=auto`` workers, pinned memory,
  persistent workers;
* **predict, pure compute**: the network in eval mode, bf16 autocast, on a
  random batch already on the GPU;
* **predict, pipeline**: :func:`hpa_classify.inference.predict.predict_probs` on the
  packed cache (TTA x1).

Rates are images/s after warm-up steps; the ratio pipeline / pure compute is
what the data path costs (target at least 0.9). Peak GPU memory is
``torch.cuda.max_memory_allocated`` of each measurement. Without a CUDA
device (and without ``--dry-run``) it says so and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")


class _RandomBatch:
    """A network and a random uint8 batch on ``device``, for timing compute alone.

    ``inputs()`` normalises the batch as training does (channels-last on CUDA
    when the config asks); the pure-compute loops call it once, before timing.
    """

    def __init__(self, cfg, device: torch.device, batch: int) -> None:
        from hpa_classify.data.dataset import normalize, scaled_stats
        from hpa_classify.models import build_model

        self.normalize = normalize  # resolved once, not on every timed step
        self.device = device
        self.model = build_model(cfg.model.name, "none", channels=cfg.data.channels).to(device)
        self.channels_last = device.type == "cuda" and cfg.train.channels_last
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.mean, self.std = scaled_stats(cfg.data.mean, cfg.data.std, cfg.data.channels)
        s = cfg.data.size
        self.xb = torch.randint(0, 256, (batch, len(cfg.data.channels), s, s), dtype=torch.uint8, device=device)

    def inputs(self) -> torch.Tensor:
        """The batch normalised once, already on the device: the timed loop copies nothing."""
        x = self.normalize(self.xb, self.mean, self.std)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda")


def _timed(device: torch.device, step, warm: int, steps: int, batch: int) -> float:
    """Images/s of ``steps`` calls of ``step()`` after ``warm`` untimed ones."""
    t0 = 0.0
    for i in range(warm + steps):
        if i == warm:
            _sync(device)
            t0 = time.perf_counter()
        step()
    _sync(device)
    return steps * batch / (time.perf_counter() - t0)


def pure_train(cfg, device: torch.device, batch: int, warm: int, steps: int) -> float:
    """Images/s of training steps on a random batch already on the device."""
    rb = _RandomBatch(cfg, device, batch)
    model = rb.model
    if cfg.train.compile:
        model.compile(backend=cfg.train.compile_backend)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    y = (torch.rand(batch, 28, device=device) < 0.1).float()
    x = rb.inputs()

    def step() -> None:
        with rb.autocast():
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return _timed(device, step, warm, steps, batch)


def pipeline_train(cfg, data, warm: int, steps: int, accelerator: str) -> float:
    """Images/s of Lightning training steps on ``data`` (a packed cache) with augmentations."""
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    from hpa_classify.data.dataset import HPADataModule
    from hpa_classify.models import build_model
    from hpa_classify.train.single import prepare_module, trainer_settings

    class Timer(Callback):
        t0 = t1 = 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
            if trainer.global_step == warm:
                _sync(pl_module.device)
                self.t0 = time.perf_counter()

        def on_train_end(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
            _sync(pl_module.device)
            self.t1 = time.perf_counter()

    module = prepare_module(cfg, build_model(cfg.model.name, "none", channels=cfg.data.channels))
    dm = HPADataModule(data, data.subset(range(min(len(data), 64))), cfg.data, cfg.augment)
    timer = Timer()
    # the Trainer settings of hpa train (precision, cuDNN benchmark, determinism), and its
    # progress bar: what a user's run pays, per-step refreshes included
    trainer = L.Trainer(
        **{**trainer_settings(cfg), "accelerator": accelerator, "devices": 1, "num_nodes": 1},
        max_steps=warm + steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=True,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[timer],
    )
    trainer.fit(module, datamodule=dm)
    return steps * cfg.data.batch_size / (timer.t1 - timer.t0)


def pure_predict(cfg, device: torch.device, batch: int, warm: int, steps: int) -> float:
    """Images/s of inference on a random batch already on the device."""
    rb = _RandomBatch(cfg, device, batch)
    model = rb.model.eval()
    x = rb.inputs()

    def step() -> None:
        with rb.autocast():
            torch.sigmoid(model(x).float())

    with torch.inference_mode():
        return _timed(device, step, warm, steps, batch)


class _Counting(torch.nn.Module):
    """Wraps a network; times the calls after the first ``warm`` (predict_probs syncs at its end)."""

    def __init__(self, model: torch.nn.Module, warm: int) -> None:
        super().__init__()
        self.model, self.warm, self.calls, self.images, self.t0 = model, warm, 0, 0, 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.calls == self.warm:
            _sync(x.device)
            self.t0 = time.perf_counter()
        if self.calls >= self.warm:
            self.images += len(x)
        self.calls += 1
        return self.model(x)


def pipeline_predict(cfg, data, device: torch.device, batch: int, warm: int, workers: int) -> float:
    """Images/s of :func:`predict_probs` on ``data`` after ``warm`` batches."""
    from hpa_classify.models import build_model
    from hpa_classify.inference.predict import predict_probs

    model = _Counting(build_model(cfg.model.name, "none", channels=cfg.data.channels), warm)
    predict_probs(model, data, cfg, tta=1, batch_size=batch, num_workers=workers, device=device)
    return model.images / (time.perf_counter() - model.t0)


def _row(r: dict) -> str:
    return (f"| {r['model']} | {r['train_pure']:,.0f} | {r['train_pipe']:,.0f} | "
            f"{r['train_pipe'] / r['train_pure']:.2f} | {r['pred_pure']:,.0f} | {r['pred_pipe']:,.0f} | "
            f"{r['pred_pipe'] / r['pred_pure']:.2f} | {r['train_pipe_mem']:.1f} / {r['pred_pipe_mem']:.1f} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="resnet34,densenet121")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--batch", type=int, default=64, help="training batch (default 64)")
    p.add_argument("--predict-batch", type=int, default=256, help="prediction batch (default 256)")
    p.add_argument("--n", type=int, default=512, help="distinct synthetic samples in the pack (default 512)")
    p.add_argument("--steps", type=int, default=60, help="timed training steps (default 60)")
    p.add_argument("--warm", type=int, default=10, help="warm-up steps, not timed (default 10)")
    p.add_argument("--workers", default="auto", help="data-loader workers (default auto: as hpa train, one per core)")
    p.add_argument("--compile", action="store_true", help="torch.compile the networks (train.compile)")
    p.add_argument("--work", type=Path, help="folder for the synthetic data and the pack (default: temp)")
    p.add_argument("--dry-run", action="store_true", help="tiny, on the CPU: checks that the code runs")
    args = p.parse_args(argv)

    if args.dry_run:
        args.models, args.size, args.batch, args.predict_batch = "resnet18", 64, 8, 16
        args.n, args.steps, args.warm, args.workers = 16, 2, 1, 0
        device, accelerator = torch.device("cpu"), "cpu"
        torch.set_num_threads(1)
    elif not torch.cuda.is_available():
        print("no CUDA device here: nothing measured (run on a GPU machine; --dry-run checks the code on a CPU)")
        return 0
    else:
        device, accelerator = torch.device("cuda"), "gpu"
    from hpa_classify.data.dataset import check_shared_memory, loader_workers

    args.workers = loader_workers(args.workers)
    check_shared_memory(max(args.batch, args.predict_batch) * 4 * args.size**2, args.workers)

    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from hpa_classify.config import load_config
    from hpa_classify.data.layout import load_dataset
    from hpa_classify.data.pack import open_pack, pack
    from hpa_classify.data.synth import generate

    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="hpa-bench-gpu-")
        args.work = Path(tmp.name)
    t_start = time.perf_counter()
    root = args.work / f"synth{args.size}-{args.n}"
    if not (root / "train.csv").is_file():
        print(f"generating {args.n} synthetic samples at {args.size} px ...", file=sys.stderr)
        generate(root, n_train=args.n, n_test=0, size=args.size, seed=0, min_per_class=0)
    cache = args.work / f"pack{args.size}-{args.n}"
    pack(load_dataset(root), cache, size=args.size, workers=args.workers)
    packed = open_pack(cache)
    # many epochs' worth of rows in one epoch: no epoch boundary inside the timed steps
    repeat = max(1, -(-(args.warm + args.steps + 2) * max(args.batch, args.predict_batch) // len(packed)))
    long = packed.subset([i for _ in range(repeat) for i in range(len(packed))])
    print(f"data ready in {time.perf_counter() - t_start:.0f} s", file=sys.stderr)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run)"
    rows = []
    for model_name in args.models.split(","):
        cfg = load_config(None, [
            f"model.name={model_name}", "model.pretrained=none", f"data.size={args.size}",
            f"data.batch_size={args.batch}", f"data.num_workers={args.workers}",
            f"train.compile={str(args.compile).lower()}", "train.channels_last=true",
        ])
        r = {"model": model_name}
        _reset_peak(device)
        r["train_pure"] = pure_train(cfg, device, args.batch, args.warm, args.steps)
        r["train_pure_mem"] = _peak_gib(device)
        _reset_peak(device)
        r["train_pipe"] = pipeline_train(cfg, long, args.warm, args.steps, accelerator)
        r["train_pipe_mem"] = _peak_gib(device)
        _reset_peak(device)
        r["pred_pure"] = pure_predict(cfg, device, args.predict_batch, args.warm, args.steps // 2 or 1)
        _reset_peak(device)
        predict_set = long.subset(range(min(len(long), (args.warm + args.steps) * args.predict_batch // 2)))
        r["pred_pipe"] = pipeline_predict(cfg, predict_set, device, args.predict_batch, args.warm, args.workers)
        r["pred_pipe_mem"] = _peak_gib(device)
        rows.append(r)
        print(_row(r), flush=True)  # at once: a run cut short by its timeout keeps what it measured
        print(f"{model_name} done ({time.perf_counter() - t_start:.0f} s)", file=sys.stderr)

    print(f"\nGPU throughput on {name}, {args.size} px, bf16 autocast, channels_last, "
          f"compile {'on' if args.compile else 'off'}; train batch {args.batch}, predict batch "
          f"{args.predict_batch}; {args.workers} data-loader workers reading a packed cache with "
          f"augmentations; {time.perf_counter() - t_start:.0f} s in all\n")
    print("| model | train, pure compute (img/s) | train, pipeline (img/s) | ratio | "
          "predict, pure compute (img/s) | predict, pipeline (img/s) | ratio | peak GPU memory train / predict (GiB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(_row(r))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
