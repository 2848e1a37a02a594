"""bioimage.io model packages: built from a run, valid for bioimageio.spec, passing bioimageio.core's test."""

from __future__ import annotations

import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import hpa


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network: any connection attempt fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_bioimageio_package_validates_and_passes_its_test(trained_run: Path, tmp_path: Path, offline: None) -> None:
    from bioimageio.core import test_model
    from bioimageio.spec import InvalidDescr, load_description

    from hpa_classify.inference.bioimageio import export_bioimageio
    from hpa_classify.inference.runs import open_run

    out = export_bioimageio(open_run(trained_run), tmp_path / "model.zip", authors=["A. Person"])
    names = set(zipfile.ZipFile(out).namelist())
    assert {"bioimageio.yaml", "README.md", "cover.png", "weights.torchscript.pt", "weights.onnx",
            "test_input.npy", "test_output.npy"} <= names
    descr = load_description(out, perform_io_checks=True)
    assert not isinstance(descr, InvalidDescr), descr.validation_summary.display()
    assert descr.validation_summary.status in ("passed", "valid-format")
    assert [str(a.id) for a in descr.inputs[0].axes] == ["batch", "channel", "y", "x"]
    summary = test_model(out, devices=["cpu"])
    assert summary.status == "passed", summary.format()
    tested = " ".join(d.name for d in summary.details)
    assert "(torchscript)" in tested and "(onnx)" in tested  # both weight formats reproduce the outputs
    warned = [w.loc for d in descr.validation_summary.details for w in d.warnings]
    assert not [loc for loc in warned if "sample_tensor" in loc or "documentation" in loc], warned
    probs = np.load(zipfile.ZipFile(out).open("test_output.npy"))
    assert probs.shape == (1, 28) and ((probs >= 0) & (probs <= 1)).all()


def test_cli_export_format(trained_run: Path, tmp_path: Path) -> None:
    result = hpa("export", trained_run, "--format", "nonesuch", "-o", tmp_path / "x.zip")
    assert result.returncode == 2 and "--format" in result.stdout + result.stderr
    result = hpa("export", trained_run, "--format", "bioimageio", "-o", trained_run / "model.zip")
    assert result.returncode == 2  # never inside the run
    assert not (trained_run / "model.zip").exists()
