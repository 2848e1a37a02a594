"""A run's model as ONNX, and prediction with onnxruntime for machines without a GPU.

``hpa export RUN -o model.onnx`` writes the trained network (best checkpoint)
with a dynamic batch axis: input ``image``, float32 ``(N, C, S, S)``,
normalised as for the PyTorch model; output ``logits``, ``(N, 28)``.
``hpa predict RUN DATA --backend onnx`` runs the same prediction (TTA,
thresholds, files) through onnxruntime, exporting ``RUN/model.onnx`` first when
it is missing or older than the checkpoint.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from hpa_classify.errors import HPAError, RunError
from hpa_classify.fileio import atomic_path
from hpa_classify.inference.runs import Run, load_model
from hpa_classify.outputs import check_output_files

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")
ONNX_OPSET = 17


def onnx_path(run: Run) -> Path:
    """Where ``hpa predict --backend onnx`` keeps a run's exported model."""
    return run.path / "model.onnx"


def export_onnx(run: Run, out: str | os.PathLike[str] | None = None, opset: int = ONNX_OPSET) -> Path:
    """Export ``run``'s best model to ONNX (atomically) and return the file's path.

    The batch axis is dynamic; the spatial side is the run's ``data.size``.
    """
    out = Path(out) if out is not None else onnx_path(run)
    check_output_files([out], protected=[run.path], allowed=[onnx_path(run)])
    model = load_model(run, "cpu")
    cfg = run.cfg
    example = torch.zeros(1, len(cfg.data.channels), cfg.data.size, cfg.data.size)
    with atomic_path(out) as tmp:
        write_onnx(model, example, tmp, opset=opset)
    log.info("exported %s to %s", run.checkpoint, out)
    return out


def write_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: str | os.PathLike[str],
    input_name: str = "image",
    output_name: str = "logits",
    opset: int = ONNX_OPSET,
) -> None:
    """Write ``model`` (traced on ``example``) to the ONNX file ``path``, with a dynamic batch axis."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
            opset_version=opset,
        )


class OnnxModel(nn.Module):
    """An ONNX network behind the ``nn.Module`` call that :func:`~hpa_classify.inference.predict.predict_probs` makes.

    Inputs are moved to the CPU as float32 NumPy arrays; outputs come back as
    torch tensors on the input's device.
    """

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None) -> None:
        super().__init__()
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own kinds on a bad file
            raise RunError(f"{path}: not a loadable ONNX model ({type(exc).__name__}: {exc})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.path = Path(path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        (logits,) = self.session.run(None, {self.input_name: array})
        return torch.from_numpy(logits).to(x.device)


def load_predictor(run: Run, device: str | torch.device = "cpu", backend: str = "torch") -> nn.Module:
    """The run's network for prediction: the PyTorch model, or its ONNX export in onnxruntime."""
    if backend == "torch":
        return load_model(run, device)
    if backend != "onnx":
        raise HPAError(f"unknown backend '{backend}' (choose from {', '.join(BACKENDS)})")
    path = onnx_path(run)
    if not path.is_file() or path.stat().st_mtime < run.checkpoint.stat().st_mtime:
        export_onnx(run, path)
    return OnnxModel(path)
