"""The synthetic generator writes the same bytes for the same seed.

The expected digests were recorded from the generator as it stood before it
was split into a package; they hold as long as the drawing code and the
random draws it makes are unchanged. The PNG and CSV bytes also depend on the
encoders (OpenCV's libpng and zlib, pandas, matplotlib): after an upgrade of
one of those, compare decoded pixels before recording new digests.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hpa_classify.analysis.preview import preview
from hpa_classify.data import synth

#: (generate keyword arguments, SHA-256 over every file written).
CASES = {
    "96px-seed3": (
        dict(n_train=40, n_test=30, size=96, seed=3, min_per_class=1),
        "aa87158d3a64c03abb1a18a3f5c545e58e6e436ec8692982aff0f0d39635dd25",
    ),
    "128px-seed0": (
        dict(n_train=12, n_test=4, size=128, seed=0, min_per_class=0),
        "adc213967639a8434ad5b5a9ab5fbdecc4754bb3fbc951c5b6558d6d113a6b2c",
    ),
}
#: SHA-256 of the contact sheet drawn at 64 px with seed 1.
PREVIEW_SHA256 = "a902f12234d45b1b08736766362aba6b5db59128c80493e4e6469cd0486d52cc"


def tree_digest(root: Path) -> str:
    """SHA-256 over the sorted relative paths and bytes of every file under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        for part in (path.relative_to(root).as_posix().encode(), path.read_bytes()):
            digest.update(len(part).to_bytes(8, "little"))
            digest.update(part)
    return digest.hexdigest()


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("workers", [1, 2])
def test_generate_writes_the_recorded_bytes(case: str, workers: int, tmp_path: Path) -> None:
    kwargs, expected = CASES[case]
    synth.generate(tmp_path / "data", workers=workers, **kwargs)
    assert tree_digest(tmp_path / "data") == expected


def test_preview_draws_the_recorded_sheet(tmp_path: Path) -> None:
    out = preview(tmp_path / "sheet.png", size=64, seed=1)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == PREVIEW_SHA256
