"""Dataset analysis: statistics, figures, stats.json, normalization.yaml and the HTML report."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import hpa
from helpers import KAGGLE2018_TRAIN_CSV, KAGGLE_LAYOUT, make_dataset, truncate, write_table
from hpa_classify.analysis.analyze import analyze
from hpa_classify.analysis.stats import (
    PixelStats,
    channel_histograms,
    find_duplicate_files,
    label_stats,
    montage_picks,
)
from hpa_classify.classes import (
    CHANNELS,
    DEFAULT_MEAN,
    DEFAULT_STD,
    KAGGLE2018_CLASS_COUNTS,
    KAGGLE2018_N_IMAGES,
    NUM_CLASSES,
)
from hpa_classify.config import load_config
from hpa_classify.errors import DataError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- numbers


def test_label_stats_counts_pairs_and_conditional() -> None:
    s = label_stats([[0], [0, 25], [0, 25], [27]])
    assert s.n_images == 4
    assert s.counts[0] == 3 and s.counts[25] == 2 and s.counts[27] == 1
    assert s.cooccurrence[0, 25] == s.cooccurrence[25, 0] == 2
    assert np.array_equal(np.diag(s.cooccurrence), s.counts)
    cond = s.conditional()
    assert cond[25, 0] == 1.0 and cond[0, 25] == pytest.approx(2 / 3)
    assert np.isnan(cond[5]).all()  # an absent class has no conditional row
    assert s.labels_per_image == {1: 2, 2: 2}
    assert s.rare(2) == [27] and 5 in s.absent()
    as_json = json.loads(json.dumps(s.to_json()))  # NaN must not reach the JSON
    assert as_json["conditional"][5][0] is None


def test_pixel_stats_mean_and_std_match_numpy() -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (4, 8, 8), dtype=np.uint8) for _ in range(3)]
    px = PixelStats(n_images=3, histograms=np.mean([channel_histograms(i) for i in images], axis=0))
    stacked = np.stack(images).astype(np.float64) / 255  # equal sizes: equal weights
    assert np.allclose(px.mean, stacked.mean(axis=(0, 2, 3)))
    assert np.allclose(px.std, stacked.std(axis=(0, 2, 3)))


def test_montage_picks_prefer_images_with_fewer_labels() -> None:
    labels = [[0, 2, 25], [2], [0], [0, 2]]
    picks = montage_picks(labels, [0, 1, 2, 3], per_class=2)
    assert picks[2][0] == 1 and picks[0][0] == 2
    assert all(len(v) <= 2 for v in picks.values())
    assert montage_picks(labels, [0, 3], per_class=1)[2] in ([0], [3])  # only candidates


def test_duplicates_found_only_among_identical_bytes(tmp_path: Path) -> None:
    ids = make_dataset(tmp_path / "t.csv", tmp_path, n=3)
    for ch in CHANNELS:  # s2 becomes an exact copy of s0
        shutil.copy(tmp_path / f"s0_{ch}.png", tmp_path / f"s2_{ch}.png")
    files = [{ch: tmp_path / f"{i}_{ch}.png" for ch in CHANNELS} for i in ids]
    groups = find_duplicate_files(ids, files)
    assert len(groups) == 4
    assert all(sorted(g.members) == [("s0", g.members[0][1]), ("s2", g.members[0][1])] for g in groups)


# ----------------------------------------------------------------------------- the report


@pytest.fixture()
def messy(tmp_path: Path) -> Path:
    """8 samples: a rare class, a truncated file and an exact duplicate sample."""
    root = tmp_path / "messy"
    labels = [[0], [0, 25], [25], [0, 2], [2], [0, 25], [27], [0]]
    ids = make_dataset(root / "train.csv", root, n=8, size=24, labels=labels)
    for ch in CHANNELS:
        shutil.copy(root / f"s0_{ch}.png", root / f"s7_{ch}.png")
    truncate(root / "s3_green.png")
    assert ids[3] == "s3"
    return root


def test_analyze_writes_report_stats_and_normalization(messy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = analyze(messy, out, max_images=100, min_count=2, per_class=3)
    stats = json.loads((out / "stats.json").read_text())
    assert stats == json.loads(json.dumps(result.stats))
    assert stats["labels"]["n_images"] == 8
    assert stats["labels"]["classes"][0]["count"] == 5
    # warnings: the rare class, the invalid sample, the duplicate
    text = "\n".join(stats["warnings"])
    assert "27 Rods & rings (1)" in text and "fewer than 2 images" in text
    assert stats["invalid"]["count"] == 1 and stats["invalid"]["problems"][0]["Id"] == "s3"
    assert "truncated" in stats["invalid"]["problems"][0]["problem"]
    assert stats["duplicates"]["sample_groups"] == [["s0", "s7"]]
    assert stats["duplicates"]["n_file_groups"] == 4
    # images: sizes, formats and the pixel statistics of the 7 valid samples
    images = stats["images"]
    assert images["sizes"] == [{"width": 24, "height": 24, "count": 7}]
    assert images["formats"] == {".png": 32}
    assert images["pixels"]["n_images"] == 7
    # normalization.yaml is a config file training accepts, with the measured values
    cfg = load_config(out / "normalization.yaml")
    mean = [images["pixels"]["channels"][c]["mean"] for c in CHANNELS]
    std = [images["pixels"]["channels"][c]["std"] for c in CHANNELS]
    assert cfg.data.mean == pytest.approx(mean, abs=6e-5)
    assert cfg.data.std == pytest.approx(std, abs=6e-5)
    # every figure is saved beside the report and embedded in it
    html = (out / "report.html").read_text()
    for key in ("class_frequency", "labels_per_image", "cooccurrence", "channel_histograms",
                "montage_rgb", "montage_green"):
        png = out / "figures" / f"{key}.png"
        assert png.read_bytes().startswith(PNG_MAGIC), key
    assert html.count('src="data:image/png;base64,') == 6
    assert not re.search(r'src="(?!data:)', html), "the report must be self-contained"
    assert "s3" in html and "fewer than 2 images" in html


def test_analyze_label_table_alone(tmp_path: Path) -> None:
    csv = write_table(tmp_path / "labels" / "train.csv", ["a", "b", "c"], [[0], [0, 1], [5]])
    result = analyze(csv, tmp_path / "out")
    assert result.stats["images"] is None and result.normalization is None
    assert set(result.figures) == {"class_frequency", "labels_per_image", "cooccurrence"}
    assert any("label sections only" in w for w in result.warnings)
    assert not (tmp_path / "out" / "normalization.yaml").exists()


def test_analyze_without_labels_shows_random_samples(tmp_path: Path) -> None:
    root = tmp_path / "unlabelled"
    make_dataset(root / "train.csv", root, n=3)
    write_table(root / "train.csv", ["s0", "s1", "s2"], None)  # Id column only
    result = analyze(root, tmp_path / "out")
    assert result.stats["labels"] is None
    assert result.stats["images"]["montage"]["examples"]["-1"]
    assert "montage_rgb" in result.figures and "class_frequency" not in result.figures


def test_analyze_with_neither_labels_nor_images_is_an_error(tmp_path: Path) -> None:
    csv = write_table(tmp_path / "ids.csv", ["a", "b"], None)
    with pytest.raises(DataError, match="nothing to analyse"):
        analyze(csv, tmp_path / "out")


def test_cli_analyze_on_synthetic_data(synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "analysis"
    result = hpa("analyze", synth_root, "-o", out, "--max-images", "16", "--min-count", "3")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "normalization.yaml" in result.stdout
    stats = json.loads((out / "stats.json").read_text())
    assert stats["images"]["pixels"]["n_images"] == 16
    assert stats["source"]["n_samples"] == 64


def test_cli_analyze_bad_csv_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("Id,Target\na,0 99\n")
    result = hpa("analyze", bad, "-o", tmp_path / "out")
    assert result.returncode == 2
    assert "out of range" in result.stderr and "Traceback" not in result.stderr


# ----------------------------------------------------------------------------- real data


@pytest.mark.realdata
@pytest.mark.skipif(not KAGGLE2018_TRAIN_CSV.is_file(),
                    reason=f"real label table not found at {KAGGLE2018_TRAIN_CSV}")
def test_real_label_table_is_analysed_without_images(tmp_path: Path) -> None:
    result = analyze(KAGGLE2018_TRAIN_CSV, tmp_path / "out")
    labels = result.stats["labels"]
    assert labels["n_images"] == KAGGLE2018_N_IMAGES
    assert [c["count"] for c in labels["classes"]] == list(KAGGLE2018_CLASS_COUNTS)
    assert result.stats["images"] is None
    assert any("27 Rods & rings (11)" in w for w in result.warnings)


@pytest.mark.realdata
@pytest.mark.skipif(not KAGGLE_LAYOUT.is_dir(), reason=f"real HPA samples not found at {KAGGLE_LAYOUT}")
def test_real_samples_reproduce_the_default_normalisation(tmp_path: Path) -> None:
    result = analyze(KAGGLE_LAYOUT, tmp_path / "out")
    stats = result.stats
    assert stats["invalid"]["count"] == 0 and stats["duplicates"]["n_file_groups"] == 0
    assert stats["images"]["sizes"] == [{"width": 512, "height": 512, "count": 8}]
    cfg = load_config(result.normalization)
    # the package default was measured on these 8 samples
    assert cfg.data.mean == pytest.approx(DEFAULT_MEAN, abs=1e-4)
    assert cfg.data.std == pytest.approx(DEFAULT_STD, abs=1e-4)
    shown = stats["images"]["montage"]["classes_shown"]
    assert len(shown) == sum(c["count"] > 0 for c in stats["labels"]["classes"]) < NUM_CLASSES
