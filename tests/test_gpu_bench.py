"""The GPU benchmark's code runs (its CPU dry path), and gpu.sh stops cleanly without a GPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_gpu_benchmark_dry_run_on_the_cpu(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "gpu.py"), "--dry-run", "--work", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = [line for line in result.stdout.splitlines() if line.startswith("| resnet18 |")]
    # each row is printed as soon as it is measured, then again in the table at the end
    assert len(table) == 2 and table[0] == table[1] and table[0].count("|") == 9


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_gpu_sh_exits_cleanly_without_cuda() -> None:
    result = subprocess.run(["bash", str(BENCH / "gpu.sh")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "no CUDA device" in result.stdout
