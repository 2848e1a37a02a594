"""Every preset loads, says where its recipe comes from, and runs one training step."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from helpers import make_dataset
from hpa_classify.config import PRESET_DIR, list_presets, load_config
from hpa_classify.data.dataset import HPADataModule
from hpa_classify.data.layout import load_dataset
from hpa_classify.errors import ConfigError
from hpa_classify.models import build_model
from hpa_classify.train.module import HPAModule

#: Sources that need no network: the bundled EfficientNet-Lite0 weights, or none.
OFFLINE_WEIGHTS = ("bundled", "none")


def test_the_presets_are_shipped() -> None:
    assert {"demo-cpu", "resnet34-512", "densenet121-winner2018"} <= set(list_presets())


@pytest.mark.parametrize("name", list_presets())
def test_preset_starts_with_where_its_recipe_comes_from(name: str) -> None:
    text = (PRESET_DIR / f"{name}.yaml").read_text()
    assert text.startswith("#"), f"{name}.yaml should open with a comment on its recipe"
    if name != "demo-cpu":
        assert "Ouyang" in text and "Nat Methods 16" in text


def test_winner_preset_has_the_recipe() -> None:
    cfg = load_config("densenet121-winner2018")
    assert cfg.model.name == "densenet121" and cfg.model.global_pool == "catavgmax"
    assert (cfg.data.size, cfg.data.crop) == (768, 512)
    assert cfg.train.loss == {"focal": 1.0, "lovasz": 1.0}
    assert cfg.predict.tta == 8 and cfg.evaluate.threshold_method == "prior"


def test_crop_larger_than_size_is_named() -> None:
    with pytest.raises(ConfigError, match="data.crop"):
        load_config(None, ["data.size=64", "data.crop=96"])


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("presets")
    make_dataset(root / "train.csv", root / "train", n=8, size=64, labels=[[i % 5, 27 - i] for i in range(8)])
    return load_dataset(root / "train.csv")


@pytest.mark.parametrize("name", list_presets())
def test_preset_runs_one_training_step(name: str, tiny_data) -> None:
    base = load_config(name)
    overrides = [
        "data.size=64", "data.batch_size=4", "data.num_workers=0",
        "train.accelerator=cpu", "train.precision='32'", "train.epochs=1",
    ]
    if base.data.crop is not None:
        overrides.append("data.crop=48")
    if base.model.pretrained not in OFFLINE_WEIGHTS:
        overrides.append("model.pretrained=none")  # timm weights would need a download
    cfg = load_config(name, overrides)
    model = build_model(
        cfg.model.name, cfg.model.pretrained, drop_rate=cfg.model.drop_rate,
        fourth_channel_init=cfg.model.fourth_channel_init, channels=cfg.data.channels,
        global_pool=cfg.model.global_pool,
    )
    before = [p.detach().clone() for p in model.parameters()]
    dm = HPADataModule(tiny_data.subset(range(4)), tiny_data.subset(range(4, 8)), cfg.data, cfg.augment)
    if cfg.data.crop is not None:
        x, _ = next(iter(dm.train_dataloader()))
        assert x.shape[-2:] == (48, 48)
    module = HPAModule(model, cfg)
    trainer = L.Trainer(
        fast_dev_run=1, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(module, datamodule=dm)
    changed = any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert changed, "one optimiser step should change the weights"
    out = model.eval()(torch.zeros(2, len(cfg.data.channels), 64, 64))  # whole image at predict time
    assert out.shape == (2, 28) and torch.isfinite(out).all()
