"""Opening a run: its files, its folds, and its model read back safely and strictly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from hpa_classify.errors import RunError
from hpa_classify.inference.checkpoints import model_state, read_checkpoint
from hpa_classify.inference.runs import fold_runs, load_model, open_run
from hpa_classify.train.rundir import RUN_FORMAT, made_by_this_tool, prepare_run_dir


def test_open_run_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="no such run directory"):
        open_run(tmp_path / "absent")
    with pytest.raises(RunError, match="no config.yaml"):
        open_run(tmp_path)


def test_run_files_and_prior(trained_run: Path) -> None:
    run = open_run(trained_run)
    assert run.checkpoint == trained_run / "checkpoints" / "best.ckpt"
    assert not run.is_kfold and fold_runs(run) == [run]
    ids, probs, labels = run.tuning_probs()
    assert len(ids) == len(probs) == len(labels) > 0
    prior = run.train_prior()
    assert prior.shape == (28,) and ((prior >= 0) & (prior <= 1)).all()


def test_compiled_and_plain_checkpoints_load_alike(trained_run: Path, tmp_path: Path) -> None:
    """``torch.compile`` adds ``_orig_mod.`` to every key; the model loads all the same."""
    run_dir = tmp_path / "compiled"
    shutil.copytree(trained_run, run_dir)
    ckpt = read_checkpoint(run_dir / "checkpoints" / "best.ckpt")
    ckpt["state_dict"] = {
        k.replace("model.", "model._orig_mod.", 1): v for k, v in ckpt["state_dict"].items()
    }
    torch.save(ckpt, run_dir / "checkpoints" / "best.ckpt")
    plain = load_model(open_run(trained_run))
    compiled = load_model(open_run(run_dir))
    for (ka, a), (kb, b) in zip(plain.state_dict().items(), compiled.state_dict().items()):
        assert ka == kb and torch.equal(a, b)


def test_model_state_keeps_only_the_network() -> None:
    state = {"model.a.weight": torch.ones(1), "loss_fn.pos_weight": torch.ones(1)}
    assert list(model_state({"state_dict": state})) == ["a.weight"]


def test_a_checkpoint_of_another_network_is_refused(trained_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "other"
    shutil.copytree(trained_run, run_dir)
    config = run_dir / "config.yaml"
    config.write_text(config.read_text().replace("tf_efficientnet_lite0", "resnet18"))
    with pytest.raises(RunError, match=r"does not fit the network .*config\.yaml names \(resnet18"):
        load_model(open_run(run_dir))


def test_a_truncated_checkpoint_is_named(trained_run: Path, tmp_path: Path) -> None:
    path = tmp_path / "best.ckpt"
    path.write_bytes((trained_run / "checkpoints" / "best.ckpt").read_bytes()[:1000])
    with pytest.raises(RunError, match="best.ckpt: unreadable checkpoint"):
        read_checkpoint(path)


def test_runs_carry_the_format_tag(trained_run: Path, tmp_path: Path) -> None:
    assert RUN_FORMAT in (trained_run / "env.json").read_text()
    assert made_by_this_tool(trained_run)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "config.yaml").write_text("name: x\n")
    (other / "notes.txt").write_text("keep")
    assert not made_by_this_tool(other)
    with pytest.raises(RunError, match="not a run folder made by 'hpa train'"):
        prepare_run_dir(other, force=True)
    assert (other / "notes.txt").read_text() == "keep"
