"""ONNX export of a run's model, and prediction with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import hpa
from hpa_classify.data.layout import load_dataset
from hpa_classify.errors import HPAError
from hpa_classify.inference.onnx import OnnxModel, export_onnx, load_predictor, onnx_path
from hpa_classify.inference.predict import predict_probs
from hpa_classify.inference.runs import load_model, open_run


def test_onnx_outputs_equal_pytorch(trained_run: Path, tmp_path: Path) -> None:
    result = hpa("export", trained_run, "-o", tmp_path / "model.onnx")
    assert result.returncode == 0, result.stderr
    run = open_run(trained_run)
    torch_model = load_model(run)
    onnx_model = OnnxModel(tmp_path / "model.onnx")
    for batch in (1, 5):  # the batch axis is dynamic
        x = torch.randn(batch, 4, run.cfg.data.size, run.cfg.data.size, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected = torch_model(x)
        got = onnx_model(x)
        assert got.shape == (batch, 28)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_predict_with_the_onnx_backend(trained_run: Path, synth_root: Path, tmp_path: Path) -> None:
    result = hpa("predict", trained_run, synth_root, "-o", tmp_path / "onnx.csv", "--tta", "2",
                 "--backend", "onnx")
    assert result.returncode == 0, result.stderr
    run = open_run(trained_run)
    assert onnx_path(run).is_file()  # exported on first use, kept in the run
    data = load_dataset(synth_root, prefer="test")
    expected = predict_probs(load_model(run), data, run.cfg, tta=2)
    got = pd.read_csv(tmp_path / "onnx_probs.csv")
    assert got["Id"].tolist() == data.ids
    np.testing.assert_allclose(got.iloc[:, 1:].to_numpy(np.float32), expected, atol=1e-4)


def test_a_stale_or_broken_export_is_replaced_or_named(trained_run: Path, tmp_path: Path) -> None:
    run = open_run(trained_run)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(HPAError, match="broken.onnx"):
        OnnxModel(broken)
    with pytest.raises(HPAError, match="unknown backend"):
        load_predictor(run, backend="tvm")
    path = export_onnx(run)
    before = path.stat().st_mtime_ns
    load_predictor(run, backend="onnx")  # newer than the checkpoint: reused as it is
    assert path.stat().st_mtime_ns == before
