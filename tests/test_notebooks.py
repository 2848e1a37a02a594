"""Every notebook in notebooks/ runs top to bottom, and is committed without outputs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat not installed (pip install -e '.[dev]')")
nbclient = pytest.importorskip("nbclient", reason="nbclient not installed (pip install -e '.[dev]')")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
#: Seconds one cell may take before the run is failed (the whole notebook should take < 60 s).
CELL_TIMEOUT = 300


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 2, f"expected notebooks in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code"
    for i, cell in enumerate(code):
        assert not cell.get("outputs") and cell.get("execution_count") is None, (
            f"{path.name}: code cell {i} holds outputs; clear them before committing"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path) -> None:
    """Execute in a fresh kernel with a temporary working folder (outputs land there)."""
    book = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        book,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    t0 = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{path.name} failed:\n{exc}")
    seconds = time.perf_counter() - t0
    errors = [o for c in book.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, errors
    print(f"{path.name}: {seconds:.1f} s")
