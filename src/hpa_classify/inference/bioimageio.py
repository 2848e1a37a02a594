"""A run's model as a bioimage.io model package, for deepImageJ (Fiji), ilastik and QuPath.

``hpa export RUN --format bioimageio -o model.zip`` writes one zip file that
holds ``bioimageio.yaml`` (the model description, format version 0.5 as
implemented by the installed ``bioimageio.spec``), TorchScript and ONNX
weights of the network with a sigmoid on its output, the test input and output
tensors (``.npy``, the output computed by the TorchScript weights), the same
as sample tensors (``.tif``), a cover image and ``README.md``. The input is the raw field, ``(batch, channel, y, x)``
float32 on the 0-255 scale; its preprocessing divides by 255 and normalises
each channel with the run's ``data.mean`` and ``data.std``, as training did.
The output is the 28 class probabilities, ``(batch, channel)``.

The package is checked with ``bioimageio.spec`` before it is written: an
invalid description is a :class:`~hpa_classify.errors.RunError` and nothing
is written.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile
import torch
import yaml
from bioimageio.spec import InvalidDescr, load_description
from bioimageio.spec.model.v0_5 import ModelDescr
from torch import nn

from hpa_classify.classes import CHANNELS, CLASS_NAMES
from hpa_classify.data.synth import render_sample
from hpa_classify.errors import RunError
from hpa_classify.fileio import atomic_path, write_text
from hpa_classify.inference.onnx import ONNX_OPSET, write_onnx
from hpa_classify.inference.runs import Run, load_model
from hpa_classify.outputs import check_output_files
from hpa_classify.render.composite import composite_rgb, green_view

log = logging.getLogger(__name__)

#: The description's file name inside the package (``rdf.yaml`` in older packages).
DESCRIPTION_FILE = "bioimageio.yaml"
#: Classes shown by the synthetic test input (Nucleoplasm, Cytosol).
TEST_LABELS = (0, 25)
CITATIONS = (
    {
        "text": "Ouyang W, et al. Analysis of the Human Protein Atlas Image Classification "
        "competition. Nature Methods 16, 1254-1261 (2019)",
        "doi": "10.1038/s41592-019-0658-6",
    },
    {
        "text": "Thul PJ, et al. A subcellular map of the human proteome. Science 356, eaal3321 (2017)",
        "doi": "10.1126/science.aal3321",
    },
)
TAGS = (
    "2d", "fluorescence-light-microscopy", "classification", "multi-label", "protein-localization",
    "human-protein-atlas", "subcellular-localization", "pytorch", "onnx",
)


def class_ids(names: Sequence[str] = CLASS_NAMES) -> list[str]:
    """Class names as identifiers, the output's channel names.

    >>> class_ids(["Nuclear membrane", "Rods & rings"])
    ['nuclear_membrane', 'rods_rings']
    """
    return [re.sub(r"[^a-z0-9]+", "_", n.lower()).strip("_") for n in names]


def example_field(run: Run, seed: int = 0) -> np.ndarray:
    """A synthetic field at the run's size: uint8 ``(4, S, S)``, channels red, green, blue, yellow."""
    return render_sample(list(TEST_LABELS), run.cfg.data.size, np.random.default_rng(seed))


def export_bioimageio(
    run: Run,
    out: str | os.PathLike[str],
    sample: np.ndarray | None = None,
    authors: Sequence[str] = ("hpa-classify",),
    license: str = "MIT",
) -> Path:
    """Write ``run``'s best model as a bioimage.io model package (a zip file) and return its path.

    Parameters
    ----------
    run : Run
        A trained run.
    out : path-like
        The zip file to write; not inside the run folder.
    sample : ndarray, optional
        The test input, uint8 ``(4, S, S)`` in the order red, green, blue,
        yellow at the run's ``data.size``; default: a synthetic field
        (:func:`example_field`).
    authors : sequence of str
        Names for the description's ``authors``.
    license : str
        SPDX licence identifier of the weights.

    Raises
    ------
    RunError
        The description does not validate (the message holds the errors).
    """
    out = Path(out)
    check_output_files([out], protected=[run.path])
    sample = example_field(run) if sample is None else np.asarray(sample, np.uint8)
    size = run.cfg.data.size
    if sample.shape != (len(CHANNELS), size, size):
        raise RunError(f"the test sample is {sample.shape}, the run needs {(len(CHANNELS), size, size)}")
    with tempfile.TemporaryDirectory(prefix="hpa-bioimageio-") as tmp:
        folder = Path(tmp)
        _write_files(run, folder, sample)
        description = _description(run, authors, license)
        write_text(folder / DESCRIPTION_FILE, yaml.safe_dump(description, sort_keys=False))
        _validate(folder / DESCRIPTION_FILE)
        with atomic_path(out) as part, zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(folder.iterdir()):
                zf.write(path, path.name)
    log.info("wrote the bioimage.io package %s from %s", out, run.checkpoint)
    return out


def _write_files(run: Run, folder: Path, sample: np.ndarray) -> None:
    """Weights, test tensors, cover and documentation into ``folder``."""
    cfg = run.cfg.data
    net = nn.Sequential(load_model(run, "cpu"), nn.Sigmoid()).eval()
    index = [CHANNELS.index(c) for c in cfg.channels]
    test_input = sample[index][None].astype(np.float32)
    mean = np.asarray(cfg.mean, np.float32)[index].reshape(1, -1, 1, 1)
    std = np.asarray(cfg.std, np.float32)[index].reshape(1, -1, 1, 1)
    example = torch.from_numpy((test_input / np.float32(255.0) - mean) / std)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing notices of timm models
        traced = torch.jit.trace(net, example)
        traced.save(str(folder / "weights.torchscript.pt"))
        test_output = traced(example).numpy().astype(np.float32)
    write_onnx(net, example, folder / "weights.onnx", output_name="probabilities")
    np.save(folder / "test_input.npy", test_input)
    np.save(folder / "test_output.npy", test_output)
    tifffile.imwrite(folder / "sample_input.tif", sample[index])  # samples: for people, as images
    tifffile.imwrite(folder / "sample_output.tif", test_output)
    cover = np.concatenate([composite_rgb(sample), green_view(sample)], axis=1)  # 2:1, as covers are
    ok, png = cv2.imencode(".png", np.ascontiguousarray(cover[..., ::-1]))
    if not ok:
        raise RunError("could not encode the cover image")
    (folder / "cover.png").write_bytes(png.tobytes())
    write_text(folder / "README.md", _documentation(run, test_output[0]))


def _description(run: Run, authors: Sequence[str], license: str) -> dict[str, Any]:
    """The model description (``bioimageio.yaml``) as plain data."""
    cfg = run.cfg
    index = [CHANNELS.index(c) for c in cfg.data.channels]
    ids = class_ids()
    return {
        "format_version": ModelDescr.implemented_format_version,
        "type": "model",
        "name": f"HPA protein localisation {cfg.name}"[:128],
        "description": (
            f"Multi-label classification of protein localisation into {len(ids)} subcellular classes "
            f"in Human Protein Atlas immunofluorescence fields ({', '.join(cfg.data.channels)} channels); "
            f"a {cfg.model.name} network trained with hpa-classify."
        ),
        "authors": [{"name": a} for a in authors],
        "cite": [dict(c) for c in CITATIONS],
        "license": license,
        "tags": list(TAGS),
        "documentation": {"source": "README.md"},
        "covers": [{"source": "cover.png"}],
        "inputs": [{
            "id": "image",
            "description": "raw field, 0-255, channels " + ", ".join(cfg.data.channels),
            "axes": [
                {"type": "batch"},
                {"type": "channel", "channel_names": list(cfg.data.channels)},
                {"type": "space", "id": "y", "size": cfg.data.size},
                {"type": "space", "id": "x", "size": cfg.data.size},
            ],
            "test_tensor": {"source": "test_input.npy"},
            "sample_tensor": {"source": "sample_input.tif"},
            "data": {"type": "float32"},
            "preprocessing": [
                {"id": "scale_linear", "kwargs": {"gain": 1.0 / 255.0}},
                {"id": "fixed_zero_mean_unit_variance", "kwargs": {
                    "axis": "channel",
                    "mean": [float(cfg.data.mean[i]) for i in index],
                    "std": [float(cfg.data.std[i]) for i in index],
                }},
            ],
        }],
        "outputs": [{
            "id": "probabilities",
            "description": "probability of each class (sigmoid of the network's logits)",
            "axes": [{"type": "batch"}, {"type": "channel", "channel_names": ids}],
            "test_tensor": {"source": "test_output.npy"},
            "sample_tensor": {"source": "sample_output.tif"},
            "data": {"type": "float32", "range": [0.0, 1.0]},
        }],
        "weights": {
            "torchscript": {"source": "weights.torchscript.pt", "pytorch_version": torch.__version__.split("+")[0]},
            "onnx": {"source": "weights.onnx", "opset_version": ONNX_OPSET, "parent": "torchscript"},
        },
        "config": {"hpa_classify": {"run": cfg.name, "model": cfg.model.name, "size": cfg.data.size}},
    }


def _documentation(run: Run, probs: np.ndarray) -> str:
    cfg = run.cfg
    top = np.argsort(-probs)[:5]
    rows = "\n".join(f"| {CLASS_NAMES[i]} | {probs[i]:.4f} |" for i in top)
    return f"""# HPA protein localisation: {cfg.name}

Multi-label classification of the subcellular localisation of a protein in a
Human Protein Atlas immunofluorescence field: {len(CLASS_NAMES)} classes, one
probability each.

## Input

One field, `(batch, channel, y, x)`, {cfg.data.size} x {cfg.data.size} px, channels
{', '.join(cfg.data.channels)} (red: microtubules, green: the protein, blue: nucleus,
yellow: endoplasmic reticulum), on the 0-255 scale of 8-bit images. Resize larger
fields to {cfg.data.size} px first. The preprocessing divides by 255 and subtracts
each channel's mean and divides by its standard deviation (`data.mean`, `data.std`).

## Output

`probabilities`: `(batch, {len(CLASS_NAMES)})`, the sigmoid of the network's logits, in
the order of the Kaggle HPA classes (0 Nucleoplasm ... 27 Rods & rings). A class
is present when its probability passes the run's threshold (`thresholds.json` of
the run; 0.5 when unknown).

## Validation

The package's test input is a synthetic field showing Nucleoplasm and Cytosol;
its expected output was computed by the TorchScript weights. Its five most
probable classes:

| class | probability |
| --- | --- |
{rows}

Macro F1 on held-out data is in the run's report (`report/report.html`) and
`hpa evaluate RUN DATA` measures it on other labelled fields.

## Training

Network {cfg.model.name}, trained by `hpa train` (hpa-classify) for
{cfg.train.epochs} epochs on {cfg.data.size} px fields, loss {cfg.train.loss}.
"""


def _validate(description: Path) -> None:
    """Raise a RunError unless ``description`` (with its files beside it) is a valid model."""
    descr = load_description(description, perform_io_checks=True)
    if isinstance(descr, InvalidDescr) or descr.validation_summary.status == "failed":
        summary = descr.validation_summary
        errors = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in summary.errors)
        raise RunError(f"the bioimage.io description does not validate: {errors[:3000]}")
