"""Interrupted training: SIGKILL and Ctrl-C mid-epoch, ``--resume``, atomic and checked checkpoints."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import hpa
from hpa_classify.errors import RunError
from hpa_classify.train.checkpointing import AtomicCheckpointIO
from hpa_classify.inference.checkpoints import read_checkpoint

#: metrics.csv columns that must agree; time and throughput may differ
SAME = ["epoch", "train_loss", "train_f1", "val_loss", "val_f1", "lr"]


def start_train(*args: str | os.PathLike[str]) -> subprocess.Popen[str]:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    return subprocess.Popen(
        [sys.executable, "-m", "hpa_classify.cli", "train", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for(proc: subprocess.Popen[str], ready, what: str, timeout: float = 240) -> None:
    """Poll until ``ready()``; fail with the process's output if it ends first."""
    end = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"'hpa train' ended (status {proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def epochs_in(metrics: Path) -> int:
    try:
        return len(pd.read_csv(metrics))
    except (OSError, pd.errors.EmptyDataError):
        return 0


def mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def interrupt_next_epoch(proc: subprocess.Popen[str], run: Path, sig: signal.Signals) -> int:
    """Send ``sig`` while the epoch after the next checkpoint runs; return the epochs finished.

    The checkpoint is written at the very end of an epoch, after ``metrics.csv``
    got the epoch's row. 50 ms later (an epoch takes several times that) the
    process is frozen (SIGSTOP), checked to be still inside the next epoch,
    signalled and thawed.
    """
    last, metrics = run / "checkpoints" / "last.ckpt", run / "metrics.csv"
    stamp = mtime(last)
    wait_for(proc, lambda: mtime(last) != stamp, "the next checkpoint")
    done = epochs_in(metrics)
    time.sleep(0.05)
    proc.send_signal(signal.SIGSTOP)
    try:
        assert epochs_in(metrics) == done, "the epoch ended before the signal; the test needs it mid-epoch"
        proc.send_signal(sig)
    finally:
        proc.send_signal(signal.SIGCONT)
    return done


def test_killed_and_interrupted_run_resumes_to_the_same_result(
    deterministic_setup: tuple[Path, Path], reference_run: Path, tmp_path: Path
) -> None:
    root, config = deterministic_setup
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"
    metrics = run / "metrics.csv"
    args = (root, "--config", config, "--out", run)

    # 1. SIGKILL while epoch 2 runs, after epoch 1's checkpoint was written
    proc = start_train(*args)
    assert interrupt_next_epoch(proc, run, signal.SIGKILL) == 1
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert epochs_in(metrics) == 1
    assert read_checkpoint(last)["epoch"] == 0  # Lightning counts epochs from 0

    # 2. resume; Ctrl-C while epoch 3 runs: a clean stop that says how to go on
    proc = start_train(*args, "--resume")
    assert interrupt_next_epoch(proc, run, signal.SIGINT) == 2
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err
    assert "interrupted" in err and "--resume" in err, err
    assert epochs_in(metrics) == 2

    # 3. resume to the end
    done = hpa("train", *args, "--resume")
    assert done.returncode == 0, done.stdout + done.stderr

    got = pd.read_csv(metrics)[SAME]
    want = pd.read_csv(reference_run / "metrics.csv")[SAME]
    assert got["epoch"].tolist() == [1, 2, 3]
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-6, atol=1e-7)
    probs = pd.read_csv(run / "val_probs.csv")
    pd.testing.assert_frame_equal(probs, pd.read_csv(reference_run / "val_probs.csv"),
                                  check_exact=False, rtol=1e-5, atol=1e-6)
    assert (run / "thresholds.json").is_file()
    env = (run / "env.json").read_text()
    assert '"resumed"' in env


def copy_unfinished(reference_run: Path, tmp_path: Path) -> Path:
    """A copy of the reference run, as if it had stopped before evaluation."""
    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    (run / "thresholds.json").unlink()
    return run


def resume_in_process(root: Path, config: Path, run: Path, *overrides: str) -> None:
    from hpa_classify.config import load_config
    from hpa_classify.data.layout import load_dataset
    from hpa_classify.train.single import train_run as train

    train(load_config(config, list(overrides)), load_dataset(root), run, resume=True)


def test_resume_refuses_a_truncated_checkpoint(reference_run: Path, deterministic_setup: tuple[Path, Path],
                                              tmp_path: Path) -> None:
    root, config = deterministic_setup
    run = copy_unfinished(reference_run, tmp_path)
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 3])
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    with pytest.raises(RunError) as info:
        resume_in_process(root, config, run)
    message = str(info.value)
    assert str(last) in message and "truncated" in message and "--force" in message
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before


def test_resume_refuses_another_config_other_data_or_no_checkpoint(
    reference_run: Path, deterministic_setup: tuple[Path, Path], tmp_path: Path
) -> None:
    from hpa_classify.errors import ConfigError
    from hpa_classify.train.rundir import prepare_run_dir

    root, config = deterministic_setup
    run = copy_unfinished(reference_run, tmp_path)
    with pytest.raises(RunError, match="unfinished run; pass --resume to continue it or --force"):
        prepare_run_dir(run, force=False)
    with pytest.raises(ConfigError, match=r"train\.lr \(0\.01 in the run, 0\.5 now\)") as info:
        resume_in_process(root, config, run, "train.lr=0.5")
    assert str(run / "config.yaml") in str(info.value)

    other = tmp_path / "other"
    shutil.copytree(root, other)
    (other / "train.csv").write_text((other / "train.csv").read_text().replace("s3,", "s03,"))
    (other / "train").joinpath("s3_red.png").rename(other / "train" / "s03_red.png")
    for channel in ("green", "blue", "yellow"):
        (other / "train" / f"s3_{channel}.png").rename(other / "train" / f"s03_{channel}.png")
    with pytest.raises(RunError, match="the data differ from those the run was trained on"):
        resume_in_process(other, config, run)

    (run / "checkpoints" / "last.ckpt").unlink()
    with pytest.raises(RunError, match="nothing to resume from .* start it again with --force"):
        resume_in_process(root, config, run)
    with pytest.raises(RunError, match="no such run directory"):
        resume_in_process(root, config, tmp_path / "nowhere")
    result = hpa("train", root, "--config", config, "--out", run, "--resume", "--force")
    assert result.returncode == 2 and "pass one of them" in result.stderr


def test_predict_names_a_truncated_checkpoint(reference_run: Path, deterministic_setup: tuple[Path, Path],
                                             tmp_path: Path) -> None:
    from hpa_classify.data.layout import load_dataset
    from hpa_classify.workflows.submission import predict_run
    from hpa_classify.inference.runs import open_run

    root, _ = deterministic_setup
    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    best = run / "checkpoints" / "best.ckpt"
    best.write_bytes(best.read_bytes()[:1000])
    out = tmp_path / "submission.csv"
    with pytest.raises(RunError, match="truncated") as info:
        predict_run(open_run(run), load_dataset(root), out)
    assert str(best) in str(info.value)
    assert not out.exists()


def test_checkpoint_io_writes_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "epoch": 0}, path)
    assert read_checkpoint(path)["epoch"] == 0

    def dies(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # the write stops half-way

    monkeypatch.setattr(torch, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {}, "epoch": 1}, path)
    assert read_checkpoint(path)["epoch"] == 0  # the old checkpoint is intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temp file left


def test_read_checkpoint_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="not found"):
        read_checkpoint(tmp_path / "missing.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(RunError, match="truncated") as info:
        read_checkpoint(junk)
    assert str(junk) in str(info.value)
    other = tmp_path / "other.ckpt"
    torch.save({"weights": 1}, other)
    with pytest.raises(RunError, match="not a training checkpoint"):
        read_checkpoint(other)
