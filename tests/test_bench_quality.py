"""The quality benchmark's smoke mode: every ablation row, scores in [0, 1], files written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conftest import hpa
from hpa_classify.data.synth.image import REVISIONS
from hpa_classify.workflows.bench import ABLATIONS, QUICK, markdown_table, parse_seeds, with_changes
from hpa_classify.errors import ConfigError


def _table_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] not in ("recipe", "---"):
            rows[cells[0]] = cells
    return rows


def test_quick_benchmark_prints_every_ablation(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    result = hpa("bench", "quality", "--quick", "--threads", "1", "-o", out, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _table_rows(result.stdout)
    assert set(rows) == {a.name for a in ABLATIONS}
    for name, cells in rows.items():
        f1 = float(cells[3].split()[0])
        assert 0.0 <= f1 <= 1.0, (name, cells)
    runs = pd.read_csv(out / "results.csv")
    assert set(runs["ablation"]) == {a.name for a in ABLATIONS}
    assert runs["macro_f1"].between(0, 1).all()
    md = (out / "quality.md").read_text()
    assert "hpa bench quality --quick" in md and "Wall time" in md
    assert f"(version 2, revision {REVISIONS[2]})" in md
    assert _table_rows(md).keys() == rows.keys()


def test_table_verdict_uses_the_larger_spread() -> None:
    runs = pd.DataFrame({
        "ablation": ["default"] * 3 + ["random init"] * 3 + ["focal loss"] + ["no augmentation"] * 3,
        "seed": [0, 1, 2, 0, 1, 2, 0, 1, 2, 3],
        "macro_f1": [0.50, 0.52, 0.54, 0.30, 0.32, 0.34, 0.51, 0.55, 0.50, 0.10],
    })
    rows = _table_rows(markdown_table(runs))
    assert rows["default"][3] == "0.520 ± 0.020" and rows["default"][7] == ""
    assert rows["random init"][5] == "+0.200" and rows["random init"][6].startswith("yes")
    assert rows["random init"][7] == "3 of 3 seeds (smallest gap +0.200)"
    assert rows["focal loss"][3] == "0.510 (one seed)" and rows["focal loss"][6].startswith("no")
    assert rows["focal loss"][7] == "0 of 1 seed (smallest gap -0.010)"  # seed 0: 0.50 vs 0.51
    # paired only where seeds are shared (1 and 2; seed 3 has no default run): 0.52 < 0.55, 0.54 > 0.50
    assert rows["no augmentation"][7] == "1 of 2 seeds (smallest gap -0.030)"
    assert "RGB only" not in rows  # rows without runs are left out


def test_only_and_synth_version_changes() -> None:
    spec = with_changes(QUICK, only="default, rgb-only", synth_version=1)
    assert spec.only == ("default", "rgb-only") and spec.synth_version == 1
    assert [a.name for a in ABLATIONS if spec.runs(a)] == ["default", "RGB only"]
    assert all(QUICK.runs(a) for a in ABLATIONS)
    for bad in ("", "defualt", "default,nope"):
        with pytest.raises(ConfigError, match="--only"):
            with_changes(QUICK, only=bad)


def test_seed_and_epoch_changes_are_checked() -> None:
    assert with_changes(QUICK, epochs=2, seeds="3,4").seeds == (3, 4)
    for bad in ("", "a,b", "1,1"):
        with pytest.raises(ConfigError):
            parse_seeds(bad)
    with pytest.raises(ConfigError):
        with_changes(QUICK, epochs=0)
