"""The packed cache: same pixels as the image files, resumable, checksummed, usable as DATA."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import hpa
from hpa_classify.data.dataset import HPADataset
from hpa_classify.data.layout import load_dataset
from hpa_classify.data.pack import (
    META_NAME,
    PackedDataset,
    is_pack,
    open_pack,
    pack,
    verify_pack,
)
from hpa_classify.errors import DataError
from hpa_classify.inference.predict import predict_probs
from hpa_classify.inference.runs import load_model, open_run

# 64 px samples are 16 KiB each: 20 rows per shard gives the 64 training samples 4 shards
SMALL_SHARDS = 20 * 4 * 64 * 64


@pytest.fixture(scope="module")
def packed(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pack") / "train64"
    pack(load_dataset(synth_root), out, size=64, workers=2, shard_bytes=SMALL_SHARDS)
    return out


def test_pack_holds_the_same_pixels_ids_and_labels(packed: Path, synth_root: Path) -> None:
    source = load_dataset(synth_root)
    ds = open_pack(packed, require_labels=True)
    assert isinstance(ds, PackedDataset) and is_pack(packed)
    assert ds.ids == source.ids and ds.labels == source.labels
    meta = json.loads((packed / META_NAME).read_text())
    assert meta["complete"] and [s["rows"] for s in meta["shards"]] == [20, 20, 20, 4]
    assert all(len(s["sha256"]) == 64 for s in meta["shards"])
    for i in (0, 19, 20, 63):
        np.testing.assert_array_equal(ds.read(i), source.read(i, 64))
    assert ds.read(5, 32).shape == (4, 32, 32)  # another side is resized on the fly
    assert verify_pack(packed) == []


def test_subset_and_torch_dataset_read_the_pack_like_the_files(packed: Path, synth_root: Path) -> None:
    source = load_dataset(synth_root)
    ds = open_pack(packed)
    sub, sub_src = ds.subset([40, 3, 21]), source.subset([40, 3, 21])
    assert sub.ids == sub_src.ids
    a = HPADataset(sub, 64, (0.1,) * 4, (0.2,) * 4)
    b = HPADataset(sub_src, 64, (0.1,) * 4, (0.2,) * 4)
    for i in range(3):
        assert torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1])
    raw = HPADataset(sub, 64, (0.1,) * 4, (0.2,) * 4, normalize=False)[0][0]
    assert raw.dtype == torch.uint8 and raw.shape == (4, 64, 64)
    # the memory maps are opened per process: a pickled copy carries none of them
    import pickle

    ds.read(0)
    assert ds._maps and not pickle.loads(pickle.dumps(ds))._maps


def test_interrupted_pack_resumes_and_keeps_finished_shards(synth_root: Path, tmp_path: Path) -> None:
    source = load_dataset(synth_root)
    out = tmp_path / "pack"
    pack(source, out, size=64, workers=1, shard_bytes=SMALL_SHARDS)
    # as if interrupted while writing shard 2: no done marker, half-written bytes, pack not complete
    (out / "shard-00002.done").unlink()
    with open(out / "shard-00002.npy", "r+b") as fh:
        fh.seek(-1000, 2)
        fh.write(b"\x00" * 1000)
    meta = json.loads((out / META_NAME).read_text())
    meta["complete"] = False
    (out / META_NAME).write_text(json.dumps(meta))
    with pytest.raises(DataError, match="unfinished"):
        open_pack(out)
    summary = pack(source, out, size=64, workers=1, shard_bytes=SMALL_SHARDS)
    assert (summary.packed_shards, summary.kept_shards) == (1, 3)
    ds = open_pack(out, verify=True)
    np.testing.assert_array_equal(ds.read(59), source.read(59, 64))


def test_verify_finds_an_altered_shard(synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "pack"
    pack(load_dataset(synth_root), out, size=64, workers=1, shard_bytes=SMALL_SHARDS)
    with open(out / "shard-00001.npy", "r+b") as fh:
        fh.seek(5000)
        byte = fh.read(1)
        fh.seek(5000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    assert verify_pack(out) == ["shard-00001.npy"]
    with pytest.raises(DataError, match="shard-00001.npy"):
        open_pack(out, verify=True)
    result = hpa("pack", out, "--verify")
    assert result.returncode == 2 and "shard-00001.npy" in result.stderr
    (out / "shard-00003.npy").unlink()
    with pytest.raises(DataError, match="shard-00003.npy: pack shard missing"):
        open_pack(out)


def test_pack_refuses_other_data_or_a_foreign_folder(synth_root: Path, tmp_path: Path) -> None:
    source = load_dataset(synth_root)
    out = tmp_path / "pack"
    pack(source.subset(range(8)), out, size=64, workers=1)
    with pytest.raises(DataError, match="--force"):
        pack(source.subset(range(9)), out, size=64, workers=1)
    with pytest.raises(DataError, match="--force"):
        pack(source.subset(range(8)), out, size=32, workers=1)
    pack(source.subset(range(9)), out, size=32, workers=1, force=True)
    assert len(open_pack(out)) == 9 and open_pack(out).side == 32
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not a pack"):
        pack(source, other, size=64, workers=1)


def test_unlabelled_pack_cannot_train(synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "test64"
    pack(load_dataset(synth_root, prefer="test"), out, size=64, workers=1)
    assert open_pack(out).labels is None
    with pytest.raises(DataError, match="no 'Target' column"):
        open_pack(out, require_labels=True)


def test_cli_packs_and_prediction_from_the_pack_equals_the_files(
    trained_run: Path, synth_root: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "test64"
    result = hpa("pack", synth_root, "--split", "test", "--size", "64", "-o", cache, "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "packed 16 samples at 64 px" in result.stdout
    run = open_run(trained_run)
    model = load_model(run)
    files = load_dataset(synth_root, prefer="test")
    packed = open_pack(cache)
    assert packed.ids == files.ids
    np.testing.assert_array_equal(
        predict_probs(model, packed, run.cfg, tta=2),
        predict_probs(model, files, run.cfg, tta=2),
    )
