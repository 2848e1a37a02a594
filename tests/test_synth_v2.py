"""Synthetic data version 2: crowded fields, cells that differ, decoys only yellow tells apart."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hpa_classify.classes import CHANNELS, parse_target
from hpa_classify.data.synth import generate, matches, render_sample
from hpa_classify.data.synth.image import REVISIONS, render_field
from hpa_classify.data.synth.reference import er_relative_side, reticulum
from hpa_classify.data.synth.truth import true_labels
from hpa_classify.errors import ConfigError
from conftest import hpa

GREEN, YELLOW = CHANNELS.index("green"), CHANNELS.index("yellow")


def test_fields_hold_10_to_40_cells_many_touching() -> None:
    counts, touching = [], []
    for i in range(12):
        _, fld = render_field([0], 128, np.random.default_rng([5, i]), version=2)
        _, cells, index = true_labels(fld, 128)
        counts.append(len(index))
        # a cell touches another when a pixel of it has a 4-neighbour of another cell
        a, b = cells[:, :-1], cells[:, 1:]
        c, d = cells[:-1], cells[1:]
        pairs = {(int(x), int(y)) for x, y in zip(np.r_[a[a != b], c[c != d]], np.r_[b[a != b], d[c != d]])}
        ids = {x for pair in pairs for x in pair if 0 not in pair}
        touching.append(len(ids) / len(index))
    assert min(counts) >= 10 and max(counts) <= 40, counts
    assert np.median(touching) > 0.6, touching


def test_version_1_fields_are_unchanged_by_the_option() -> None:
    a = render_sample([6, 23], 64, np.random.default_rng(3))
    b = render_sample([6, 23], 64, np.random.default_rng(3), version=1)
    c = render_sample([6, 23], 64, np.random.default_rng(3), version=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_unknown_version_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="version"):
        render_sample([0], 64, np.random.default_rng(0), version=3)
    with pytest.raises(ConfigError, match="version"):
        generate(tmp_path / "x", n_train=2, n_test=0, size=64, min_per_class=0, version=0)
    assert not (tmp_path / "x").exists()


def _expressing_cytoplasm(label: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Green and yellow over the cytoplasm of the interphase cells that show ``label``
    (one 256 px field)."""
    image, fld = render_field([label], 256, np.random.default_rng([seed, 7]), version=2)
    nuclei, cells, index = true_labels(fld, 256)
    shows = [k + 1 for k, i in enumerate(index) if fld.cells[i].shows and fld.cells[i].kind == "interphase"]
    cyto = np.isin(cells, shows) & (nuclei == 0)
    return image[GREEN][cyto].astype(float), image[YELLOW][cyto].astype(float)


def _lit(g: np.ndarray) -> np.ndarray:
    """Where the green is above half its 99th percentile: what the pattern covers, in green alone."""
    return g > 0.5 * np.percentile(g, 99)


def _cytoplasm_correlation(label: int, seed: int) -> float:
    g, y = _expressing_cytoplasm(label, seed)
    return float(np.corrcoef(g, y)[0, 1])


def test_only_the_yellow_tells_the_er_mitochondria_and_cytosol_apart() -> None:
    """The three are drawn alike; the ER's green follows the yellow, the mitochondria's lies
    where the yellow is not, the cytosol's half on it and half off it."""
    er = [_cytoplasm_correlation(6, s) for s in range(6)]
    mito = [_cytoplasm_correlation(23, s) for s in range(6)]
    cytosol = [_cytoplasm_correlation(25, s) for s in range(6)]
    assert min(er) > 0.6, er
    assert max(mito) < -0.3, mito
    assert max(abs(c) for c in cytosol) < 0.25, cytosol


def _lit_share(label: int, seed: int) -> float:
    return float(np.mean(_lit(_expressing_cytoplasm(label, seed)[0])))


def test_in_green_alone_the_three_networks_cover_alike() -> None:
    shares = {c: np.mean([_lit_share(c, s) for s in range(8)]) for c in (6, 23, 25)}
    assert max(shares.values()) - min(shares.values()) < 0.08, shares


def test_only_the_yellow_tells_the_three_vesicles_apart() -> None:
    """Peroxisomes, endosomes and lysosomes are the same vesicles, cover the cells alike in
    green, and lie on the ER's side, off it, and across its edge: the yellow where the green
    is lit, over the yellow of the same cytoplasm, is high, low and about 1."""
    ratios: dict[int, list[float]] = {}
    shares: dict[int, float] = {}
    for c in (8, 9, 10):
        fields = [_expressing_cytoplasm(c, s) for s in range(6)]
        ratios[c] = [float(y[_lit(g)].mean() / y.mean()) for g, y in fields]
        shares[c] = float(np.mean([np.mean(_lit(g)) for g, _ in fields]))
    assert min(ratios[8]) > 1.3, ratios
    assert max(ratios[9]) < 0.6, ratios
    assert all(0.7 < r < 1.3 for r in ratios[10]), ratios
    assert max(shares.values()) - min(shares.values()) < 0.03, shares


def test_a_network_placed_by_the_er_needs_the_er_first() -> None:
    _, fld = render_field([0], 64, np.random.default_rng(0), version=2)
    fld.er_side = None
    with pytest.raises(ValueError, match="draw the ER"):
        reticulum(fld, np.random.default_rng(1), 0.3, side="opposite")
    with pytest.raises(ValueError, match="draw the ER"):
        er_relative_side(fld, np.random.default_rng(1), "on")
    with pytest.raises(ValueError, match="side must be"):
        reticulum(fld, np.random.default_rng(1), 0.3, side="left")


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("v2") / "data"
    generate(out, n_train=24, n_test=8, size=64, seed=4, min_per_class=0, masks=True, version=2, workers=1)
    return out


def test_cells_of_a_field_differ_and_together_give_its_labels(crowded: Path) -> None:
    image_targets = pd.read_csv(crowded / "train.csv").set_index("Id")["Target"]
    image_targets = pd.concat([image_targets, pd.read_csv(crowded / "test_labels.csv").set_index("Id")["Target"]])
    cells = pd.read_csv(crowded / "masks" / "cell_labels.csv", keep_default_na=False)
    negative = subset = 0
    for sample_id, group in cells.groupby("Id"):
        field = set(parse_target(image_targets[sample_id]))
        shown = [set(parse_target(t)) if t else set() for t in group["Target"]]
        assert all(s <= field for s in shown), sample_id
        assert set().union(*shown) == field, sample_id  # the image's label is the union over its cells
        negative += sum(not s for s in shown)
        subset += sum(bool(s) and s < field and not ({16, 17} & field) for s in shown)
        cell_ids = np.unique(np.asarray(Image.open(crowded / "masks" / f"{sample_id}_cells.png")))
        assert sorted(group["cell"]) == [int(k) for k in cell_ids if k > 0]
    assert negative > 0 and subset > 0, (negative, subset)


def test_written_with_its_version_and_the_same_bytes_whatever_the_workers(crowded: Path, tmp_path: Path) -> None:
    record = json.loads((crowded / "synth.json").read_text())
    assert record["version"] == 2
    assert matches(crowded, version=2) and not matches(crowded, version=1)
    again = tmp_path / "again"
    generate(again, n_train=24, n_test=8, size=64, seed=4, min_per_class=0, masks=True, version=2, workers=2)

    def digests(root: Path) -> dict[str, str]:
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*.png"))}

    assert digests(again) == digests(crowded)
    assert (again / "masks" / "cell_labels.csv").read_bytes() == (crowded / "masks" / "cell_labels.csv").read_bytes()


def test_a_dataset_of_an_earlier_revision_is_not_reused(crowded: Path, tmp_path: Path) -> None:
    """A version 2 dataset drawn before the decoys were placed by the ER's side records no
    revision; a benchmark must draw it again rather than train on it."""
    record = json.loads((crowded / "synth.json").read_text())
    assert record["revision"] == REVISIONS[2] > 1
    old = tmp_path / "old"
    old.mkdir()
    (old / "synth.json").write_text(json.dumps({k: v for k, v in record.items() if k != "revision"}))
    assert not matches(old, version=2)
    assert not matches(old)


def test_cli_writes_version_2_with_masks(tmp_path: Path) -> None:
    out = tmp_path / "s"
    result = hpa("synth", out, "--n", "4", "--n-test", "2", "--size", "64", "--min-per-class", "0",
                 "--synth-version", "2", "--masks", "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "version 2" in result.stdout
    assert (out / "masks" / "cell_labels.csv").is_file()
    assert len(list((out / "masks").glob("*_cells.png"))) == 6
    bad = hpa("synth", tmp_path / "t", "--n", "4", "--n-test", "2", "--synth-version", "3")
    assert bad.returncode == 2 and "version" in bad.stderr
    assert not (tmp_path / "t").exists()
