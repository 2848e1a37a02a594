"""Interrupted training: SIGKILL and Ctrl-C mid-epoch, ``--resume``, atomic and checked checkpoints."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import hpa
from helpers import read_thresholds_file
from hpa_classify.errors import RunError
from hpa_classify.train.checkpointing import AtomicCheckpointIO
from hpa_classify.inference.checkpoints import read_checkpoint

#: metrics.csv columns that must agree; time and throughput may differ
SAME = ["epoch", "train_loss", "train_f1", "val_loss", "val_f1", "lr"]


#: ``hpa train`` that stops itself (SIGSTOP) before training step ``HPA_TEST_STOP_AT`` =
#: "epoch:batch" (epochs from 0), so that the test signals it at a known point mid-epoch.
STOPPING_TRAIN = """
import os, signal, sys
from hpa_classify.cli import main
from hpa_classify.train.module import HPAModule

epoch, batch = map(int, os.environ["HPA_TEST_STOP_AT"].split(":"))
step = HPAModule.on_train_batch_start

def stop_there(self, batch_data, batch_idx):
    if (self.current_epoch, batch_idx) == (epoch, batch):
        os.kill(os.getpid(), signal.SIGSTOP)
    return step(self, batch_data, batch_idx)

HPAModule.on_train_batch_start = stop_there
sys.argv[0] = "hpa"
main()
"""


def start_train(*args: str | os.PathLike[str], stop_at: tuple[int, int]) -> subprocess.Popen[str]:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", HPA_TEST_STOP_AT="%d:%d" % stop_at)
    return subprocess.Popen(
        [sys.executable, "-c", STOPPING_TRAIN, "train", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_until_stopped(proc: subprocess.Popen[str], timeout: float = 300) -> None:
    """Wait for ``proc`` to stop itself; fail with its output if it ends first (or hangs)."""
    stat = Path(f"/proc/{proc.pid}/stat")
    end = time.monotonic() + timeout
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "T":
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"'hpa train' ended (status {proc.returncode}) before it stopped:\n{out}\n{err}")
        if time.monotonic() > end:  # a hang guard, not a speed check
            proc.kill()
            pytest.fail("'hpa train' neither stopped nor ended")
        time.sleep(0.05)


def epochs_in(metrics: Path) -> int:
    try:
        return len(pd.read_csv(metrics))
    except (OSError, pd.errors.EmptyDataError):
        return 0


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc to see a stopped process")
def test_killed_and_interrupted_run_resumes_to_the_same_result(
    deterministic_setup: tuple[Path, Path], reference_run: Path, tmp_path: Path
) -> None:
    root, config = deterministic_setup
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"
    metrics = run / "metrics.csv"
    args = (root, "--config", config, "--out", run)

    # 1. SIGKILL at the third step of epoch 2, after epoch 1's checkpoint was written
    proc = start_train(*args, stop_at=(1, 2))
    wait_until_stopped(proc)
    assert epochs_in(metrics) == 1
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert epochs_in(metrics) == 1
    assert read_checkpoint(last)["epoch"] == 0  # Lightning counts epochs from 0

    # 2. resume; Ctrl-C at the third step of epoch 3: a clean stop that says how to go on
    proc = start_train(*args, "--resume", stop_at=(2, 2))
    wait_until_stopped(proc)
    assert epochs_in(metrics) == 2
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGCONT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err
    assert "interrupted" in err and "--resume" in err, err
    assert epochs_in(metrics) == 2
    assert read_checkpoint(last)["epoch"] == 1

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
    # the same thresholds and scores as the uninterrupted run
    np.testing.assert_array_equal(read_thresholds_file(run / "thresholds.json"),
                                  read_thresholds_file(reference_run / "thresholds.json"))
    summary, reference = (json.loads((r / "report" / "summary.json").read_text()) for r in (run, reference_run))
    assert {k: v for k, v in summary.items() if k != "run"} == {k: v for k, v in reference.items() if k != "run"}
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
    with pytest.raises(ConfigError, match=r"train\.lr \(0\.01 then, 0\.5 now\)") as info:
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
