"""Run folders from elsewhere never run code; outputs never destroy what the tool did not make.

Every refusal is checked through the command line: exit status 2, the file
named in the message, no traceback, and the protected files byte-identical
afterwards.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from conftest import hpa

class _Payload:
    """An object whose unpickling creates the folder ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.mkdir, (str(self.marker),))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refused(result, *names: str) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    text = " ".join(result.stderr.split())
    for name in names:
        assert name in text, text
    return text


@pytest.fixture()
def hostile_run(trained_run: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of a trained run whose checkpoints would create ``marker`` when unpickled."""
    run = tmp_path / "shared-run"
    shutil.copytree(trained_run, run)
    marker = tmp_path / "marker"
    with open(run / "checkpoints" / "best.ckpt", "wb") as fh:  # a plain pickle
        pickle.dump({"state_dict": _Payload(marker)}, fh)
    torch.save({"state_dict": {"model.x": _Payload(marker)}}, run / "checkpoints" / "last.ckpt")  # torch's zip
    (run / "model.onnx").unlink(missing_ok=True)
    return run, marker


@pytest.mark.parametrize("command", ["predict", "export", "evaluate"])
def test_a_hostile_checkpoint_is_refused_and_never_runs(
    command: str, hostile_run: tuple[Path, Path], synth_root: Path, tmp_path: Path
) -> None:
    run, marker = hostile_run
    args = {
        "predict": ["predict", run, synth_root, "--tta", "1", "-o", tmp_path / "sub.csv"],
        "export": ["export", run, "-o", tmp_path / "model.onnx"],
        "evaluate": ["evaluate", run, synth_root, "--tta", "1", "-o", tmp_path / "eval"],
    }[command]
    text = _refused(hpa(*args), "best.ckpt", "refused")
    assert "nothing in it ran" in text
    assert not marker.exists()
    assert not (tmp_path / "sub.csv").exists() and not (tmp_path / "model.onnx").exists()


def test_resume_from_a_hostile_checkpoint_is_refused(hostile_run: tuple[Path, Path], synth_root: Path) -> None:
    run, marker = hostile_run
    (run / "thresholds.json").unlink()  # an unfinished run, as --resume expects
    config = run / "config.yaml"
    _refused(hpa("train", synth_root, "--config", config, "-o", run, "--resume"), "last.ckpt")
    assert not marker.exists()


def test_load_model_refuses_in_process(hostile_run: tuple[Path, Path]) -> None:
    from hpa_classify.errors import RunError
    from hpa_classify.inference.runs import load_model, open_run

    run, marker = hostile_run
    with pytest.raises(RunError, match="refused"):
        load_model(open_run(run))
    assert not marker.exists()


def test_force_replaces_only_a_run_folder_the_tool_made(synth_root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "config.yaml").write_text("name: mine\n")  # looks like a run, is not one
    precious = folder / "thesis.txt"
    precious.write_text("years of work")
    _refused(hpa("train", synth_root, "-o", folder, "--force", "--set", "train.epochs=1"), str(folder), "--force")
    assert precious.read_text() == "years of work"


def test_predict_never_writes_over_an_input_or_into_a_run(trained_run: Path, synth_root: Path) -> None:
    labels = synth_root / "train.csv"
    before = _digest(labels)
    _refused(hpa("predict", trained_run, synth_root, "-o", labels), "train.csv", "label table")
    assert _digest(labels) == before
    own_input = synth_root / "sample_submission.csv"  # the CSV this command reads
    before = _digest(own_input)
    _refused(hpa("predict", trained_run, synth_root, "-o", own_input), "sample_submission.csv", "input")
    assert _digest(own_input) == before
    best = trained_run / "checkpoints" / "best.ckpt"
    before = _digest(best)
    _refused(hpa("predict", trained_run, synth_root, "-o", best), "best.ckpt", "inside")
    assert _digest(best) == before


def test_predict_to_a_folder_is_refused_before_any_work(trained_run: Path, synth_root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    _refused(hpa("predict", trained_run, synth_root, "-o", folder), "is a folder")
    assert not (tmp_path / "out_probs.csv").exists()


def test_export_never_overwrites_a_checkpoint(trained_run: Path) -> None:
    best = trained_run / "checkpoints" / "best.ckpt"
    before = _digest(best)
    _refused(hpa("export", trained_run, "-o", best), "best.ckpt", "inside")
    assert _digest(best) == before


def test_demo_never_deletes_data_it_did_not_make(tmp_path: Path) -> None:
    data = tmp_path / "demo" / "data"
    data.mkdir(parents=True)
    own = data / "train.csv"
    own.write_text("Id,Target\nmine,0\n")
    _refused(hpa("demo", "-o", tmp_path / "demo", "--n", "8", "--n-test", "4"), str(data), "hpa synth")
    assert own.read_text() == "Id,Target\nmine,0\n"


def test_synth_never_empties_a_folder_it_did_not_make(tmp_path: Path) -> None:
    own = tmp_path / "kaggle" / "train.csv"
    own.parent.mkdir()
    own.write_text("Id,Target\nreal,0\n")
    _refused(hpa("synth", own.parent, "--n", "4", "--n-test", "2"), str(own.parent))
    assert own.read_text() == "Id,Target\nreal,0\n"


@pytest.mark.parametrize("name", ["../../outside", "/tmp/abs", "a/b", ".."])
def test_a_run_name_is_not_a_path(name: str, synth_root: Path, tmp_path: Path) -> None:
    result = hpa("train", synth_root, "--set", f"name={name}", cwd=tmp_path)
    _refused(result, "'name'", "not a path")
    assert not any(tmp_path.iterdir())
