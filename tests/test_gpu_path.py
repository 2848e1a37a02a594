"""The GPU path, checked on the CPU: compiled training, no host read-back per step,
normalisation constants made once per device, loader workers and shared memory,
prediction precision from the config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hpa_classify.config import load_config
from hpa_classify.data import dataset as dataset_mod
from hpa_classify.data.dataset import check_shared_memory, loader_workers
from hpa_classify.data.layout import checked, load_dataset
from hpa_classify.errors import ConfigError
from hpa_classify.inference.checkpoints import read_checkpoint
from hpa_classify.inference.onnx import export_onnx
from hpa_classify.inference.predict import autocast_dtype, predict_probs
from hpa_classify.inference.runs import load_model, open_run
from hpa_classify.models import build_model
from hpa_classify.train.module import HPAModule
from hpa_classify.train.single import train_run

TINY = ["data.size=32", "data.batch_size=16", "data.num_workers=0", "train.epochs=1",
        "train.limit_train_batches=2", "predict.tta=1", "evaluate.pr_figures=false"]


def test_compiled_training_reloads_predicts_and_exports(synth_root: Path, tmp_path: Path) -> None:
    """``train.compile`` compiles in place: checkpoints keep the network's own parameter names."""
    cfg = load_config("demo-cpu", [*TINY, "train.compile=true", "train.compile_backend=eager", "name=compiled"])
    data = checked(load_dataset(synth_root))
    run = train_run(cfg, data, tmp_path / "compiled")
    keys = read_checkpoint(run.checkpoint)["state_dict"]
    assert keys and not any("_orig_mod" in k for k in keys)
    model = load_model(open_run(run.path))
    probs = predict_probs(model, data.subset(range(4)), cfg, tta=1)
    assert probs.shape == (4, 28) and np.isfinite(probs).all()
    assert (run.path / "thresholds.json").is_file()
    assert export_onnx(open_run(run.path), tmp_path / "compiled.onnx").stat().st_size > 0


class _NoReadBack:
    """Fails the test on any copy of a tensor to the host inside the patched block."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch

    def __enter__(self) -> _NoReadBack:
        def refuse(name: str):  # type: ignore[no-untyped-def]
            def call(*args, **kwargs):  # type: ignore[no-untyped-def]
                raise AssertionError(f"Tensor.{name} read a value back to the host during a step")
            return call

        for name in ("item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__"):
            self.monkeypatch.setattr(torch.Tensor, name, refuse(name))
        return self

    def __exit__(self, *exc: object) -> None:
        self.monkeypatch.undo()


def test_steps_never_read_back_to_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training and validation steps keep every number on the device; the epoch reads once."""
    cfg = load_config("demo-cpu", TINY)
    module = HPAModule(build_model("resnet18", "none", channels=cfg.data.channels), cfg)
    x = torch.randn(4, 4, 32, 32)
    y = torch.zeros(4, 28)
    y[:, 0] = 1
    with _NoReadBack(monkeypatch), pytest.warns(UserWarning, match="trainer"):  # self.log without a Trainer
        module.training_step((x, y), 0)
        module.validation_step((x, y), 0)
        module.validation_step((x, y), 1)
    assert torch.cat(module._val_probs).shape == (8, 28)
    assert float(torch.stack(module._val_loss).sum()) > 0


def test_normalisation_constants_are_made_once_per_device(trained_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Prediction over several batches builds the mean and std tensors once, not per batch."""
    run = open_run(trained_run)
    env = json.loads((trained_run / "env.json").read_text())
    data = load_dataset(env["data"]["csv"], images=env["data"]["image_dir"]).subset(range(6))
    calls = []
    real = dataset_mod.scaled_stats
    monkeypatch.setattr(dataset_mod, "scaled_stats", lambda *a: calls.append(a) or real(*a))
    dataset_mod.device_stats.cache_clear()
    predict_probs(load_model(run), data, run.cfg, tta=1, batch_size=2)  # three batches
    assert len(calls) == 1


def test_loader_workers_share_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataset_mod.os, "cpu_count", lambda: 16)
    assert loader_workers("auto") == 16
    assert loader_workers("auto", processes=4) == 4
    assert loader_workers("auto", processes=4, validation=True) == 2
    assert loader_workers(0, processes=4) == 0


def test_shared_memory_is_checked_before_loading(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(dataset_mod.shutil, "disk_usage", lambda p: usage._replace(free=64 << 20))
    batch = 256 * 4 * 512 * 512  # 256 MiB of uint8
    with pytest.raises(ConfigError, match=r"data.num_workers .* --shm-size"):
        check_shared_memory(batch, workers=16, path=str(tmp_path))
    check_shared_memory(batch, workers=0, path=str(tmp_path))  # no workers: nothing to hand over
    check_shared_memory(1 << 20, workers=2, path=str(tmp_path))


def test_prediction_precision_follows_the_config() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype("32", cuda) is None
    assert autocast_dtype("bf16-mixed", cpu) is torch.bfloat16
    assert autocast_dtype("16-mixed", cuda) is torch.float16
    assert autocast_dtype("auto", cpu) is None
