"""The course notebooks: each runs end to end in the tiny setting, and none is committed with outputs.

Executed copies are written to a temporary folder (for inspection when a test fails), never back into notebooks/.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
COLAB = "https://colab.research.google.com/github/talkinghead/talkinghead/blob/main/notebooks/"
CELL_TIMEOUT = 300  # seconds per cell; the tiny setting needs a few


def _ids(path: Path) -> str:
    return path.stem


def test_the_written_chapters_are_there():
    names = [p.name for p in NOTEBOOKS]
    assert "00_data_and_features.ipynb" in names and "01_temporal_gan.ipynb" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_committed_notebook_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, cell in enumerate(nb.cells)
             if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: code cells {dirty} have outputs or execution counts: clear them before committing "
                       f"(Jupyter: Edit → Clear All Outputs; or `jupyter nbconvert --clear-output --inplace {path.name}`)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_has_badge_colab_install_and_parameters(path):
    nb = nbformat.read(path, as_version=4)
    assert COLAB + path.name in nb.cells[0].source, f"{path.name}: the first cell needs its 'Open in Colab' badge"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert 'if "google.colab" in sys.modules' in code[0].source, f"{path.name}: the first code cell installs on Colab only"
    tagged = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: exactly one code cell must be tagged 'parameters', found {len(tagged)}"
    assert 'os.environ.get("TALKINGHEAD_TINY") == "1"' in tagged[0].source, f"{path.name}: TALKINGHEAD_TINY must switch the tiny setting"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_runs_in_the_tiny_setting(path, tmp_path, monkeypatch):
    monkeypatch.setenv("TALKINGHEAD_TINY", "1")
    # The kernel is a new process started in tmp_path: make sure it imports this checkout's library.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT / "lib"), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        nbformat.write(nb, tmp_path / path.name)  # the executed copy, outputs and all, for a failing run's reader
    seconds = time.perf_counter() - start
    assert not list((ROOT / "notebooks").glob("course_data")), "a notebook wrote into notebooks/"
    print(f"{path.name}: {seconds:.1f} s in the tiny setting")
