"""Class activation maps, embeddings and nearest images of a run (hpa explain, embed, neighbours)."""

from __future__ import annotations

import re
from pathlib import Path

import anndata
import cv2
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from test_render import CHROMIUM, needs_chromium, screenshot
from typer.testing import CliRunner

from hpa_classify.cli import app
from hpa_classify.data.layout import checked, load_dataset
from hpa_classify.errors import ConfigError
from hpa_classify.explain.cam import MIN_SIDE, grad_cam, load_batch, pooled_features, stage_for
from hpa_classify.explain.embed import embed_dataset, neighbours_sheet
from hpa_classify.inference.runs import load_model, open_run
from hpa_classify.models.factory import build_model


@pytest.mark.parametrize("name", ["test_efficientnet", "test_byobnet"])
def test_grad_cam_any_backbone(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, "none", channels=["red", "green", "blue", "yellow"]).eval()
    x = torch.randn(3, 4, 48, 48)
    probs, maps = grad_cam(model, x, [[0], [1, 5], []])
    assert probs.shape == (3, 28)
    assert [sorted(m) for m in maps] == [[0], [1, 5], []]
    for m in maps[1].values():
        assert m.shape == (48, 48) and m.dtype == np.float32
        assert 0.0 <= m.min() and m.max() <= 1.0
    assert pooled_features(model, x).shape[0] == 3


def test_auto_layer_is_the_deepest_map_of_at_least_8_cells() -> None:
    torch.manual_seed(0)
    model = build_model("test_efficientnet", "none", channels=["red", "green", "blue", "yellow"]).eval()
    strides = [int(f["reduction"]) for f in model.feature_info]
    for side in (64, 128, 256, 512):
        stage = stage_for(model, side)
        stride = strides[-1] if stage is None else strides[stage]
        assert side // stride >= MIN_SIDE or stride == strides[0]
        deeper = [r for r in strides if r > stride]
        assert all(side // r < MIN_SIDE for r in deeper), (side, stride)
    assert stage_for(model, 512, "last") is None and stage_for(model, 64, strides[-1]) is None
    with pytest.raises(ConfigError, match="stride"):
        stage_for(model, 64, 7)
    x = torch.randn(2, 4, 64, 64)
    p_last, last = grad_cam(model, x, [[3], [3]])
    p_auto, auto = grad_cam(model, x, [[3], [3]], layer="auto")
    np.testing.assert_allclose(p_last, p_auto, rtol=1e-5, atol=1e-6)  # the logits come from the whole network
    assert auto[0][3].shape == (64, 64) and not np.array_equal(auto[0][3], last[0][3])


def test_randomised_weights_change_the_map(trained_run: Path, synth_root: Path) -> None:
    """Adebayo et al. 2018: a map that survives randomising the weights shows the image, not the model."""
    run = open_run(trained_run)
    data = checked(load_dataset(synth_root))
    model = load_model(run)
    _, x = load_batch(data, range(8), run.cfg, torch.device("cpu"))
    classes = [sorted(set(s) | {0}) for s in data.labels[:8]]
    _, trained = grad_cam(model, x, classes)
    random = build_model(run.cfg.model.name, "none", channels=run.cfg.data.channels).eval()
    _, randomised = grad_cam(random, x, classes)
    rhos = [spearmanr(trained[i][c].ravel(), randomised[i][c].ravel())[0] for i in range(8) for c in classes[i]]
    rhos = np.nan_to_num(np.array(rhos, dtype=float))
    assert np.median(rhos) < 0.5, rhos


def test_explain_command_writes_one_page(trained_run: Path, synth_root: Path, tmp_path: Path) -> None:
    ids = "synth-000000,synth-000003"
    result = CliRunner().invoke(app, ["explain", str(trained_run), str(synth_root), "-o", str(tmp_path / "ex"),
                                      "--ids", ids, "--classes", "0,25", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "ex" / "explain.html").read_text()
    assert page.count('<div class="sample">') == 2
    # composite and green, then each class on both
    assert page.count("data:image/png;base64,") == 2 * (2 + 2 * 2)
    assert "http" not in page.split("<body>")[1].replace(str(trained_run), "")


def test_embed_tables_umap_and_page(trained_run: Path, synth_root: Path, tmp_path: Path) -> None:
    data = checked(load_dataset(synth_root))
    out = tmp_path / "emb"
    written = embed_dataset(trained_run, data, out, device=torch.device("cpu"))
    adata = anndata.read_h5ad(written["h5ad"])
    assert adata.n_obs == len(data) and list(adata.obs_names) == data.ids
    assert adata.X.shape[1] > 8 and np.isfinite(adata.X).all()
    assert list(adata.obs["Target"])[:3] == [" ".join(map(str, s)) for s in data.labels[:3]]
    npz = np.load(written["npz"])
    assert np.allclose(npz["features"], adata.X)
    png = cv2.imread(str(written["png"]))
    assert png is not None and png.std() > 5
    page = written["html"].read_text()
    # plotly.js embedded (megabytes), nothing fetched from a network
    assert "plotly_hover" in page and len(page) > 1_000_000
    assert not re.search(r"<script[^>]*\bsrc=", page)


@needs_chromium
def test_umap_page_renders(trained_run: Path, synth_root: Path, tmp_path: Path) -> None:
    data = checked(load_dataset(synth_root))
    written = embed_dataset(trained_run, data, tmp_path / "emb", device=torch.device("cpu"))
    shot = screenshot(written["html"], tmp_path / "umap_shot.png")
    # plotly drew its axes and markers: many coloured (not grey) pixels
    hsv = cv2.cvtColor(shot, cv2.COLOR_BGR2HSV)
    assert (hsv[..., 1] > 80).sum() > 200
    assert CHROMIUM


def test_neighbours_sheet(trained_run: Path, synth_root: Path, tmp_path: Path) -> None:
    data = checked(load_dataset(synth_root))
    png = tmp_path / "nb.png"
    found = neighbours_sheet(trained_run, data, data.ids[5], png, k=4, device=torch.device("cpu"))
    assert len(found) == 4 and data.ids[5] not in [i for i, _ in found]
    sims = [s for _, s in found]
    assert sims == sorted(sims, reverse=True) and all(-1 <= s <= 1 + 1e-6 for s in sims)
    assert cv2.imread(str(png)) is not None
