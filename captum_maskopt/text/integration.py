"""Word-level rationales for Hugging Face text classifiers.

:class:`TextExplainer` takes a sequence classifier, its (fast) tokenizer and raw
strings, and does what a Captum user otherwise writes by hand: batched tokenization
with attention masks, baselines of pad ids that keep the special tokens (as Captum's
BERT tutorial builds them), word pieces grouped into words, and
:class:`~captum_maskopt.LayerMaskOptimization` on the embedding layer underneath. It returns one
:class:`WordAttribution` per text: a score per word with its character offsets into
the original string, and rationales (top-k % or a threshold) as character spans.

Texts longer than the model's window are cut into overlapping windows that are
explained together: the document's logits are the mean of its windows' logits, and a
word has one mask value wherever it appears, so the windows agree on the overlap.

Any Captum layer attribution (``LayerIntegratedGradients`` and friends) can be run
through the same tokenization with :meth:`TextExplainer.explain_with`, so methods are
compared on identical words.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from captum_maskopt.attr import LayerMaskOptimization, LayerSwitch, MaskOptimization
from captum_maskopt.formatting import warn_caller
from captum_maskopt.tables import InputError

__all__ = [
    "TEXT_SETTINGS", "text_settings", "TextEncoding", "WordAttribution", "EmbeddingSpace",
    "TextExplainer",
]

#: Settings of :meth:`TextExplainer.explain` beyond the method's own defaults: none,
#: since the defaults were chosen on text (the validation split of the packaged
#: sentiment classifier; :class:`~captum_maskopt.settings.MaskOptimizationSettings`
#: and ``docs/settings.md`` say what they are and why). Kept as the place for
#: text-only settings, should one be needed. Word groups use free logits
#: (``parametrization="auto"``); ``parametrization="gaussian1d"`` gives the paper's
#: contiguous spans instead.
TEXT_SETTINGS: Dict[str, Any] = {}


def text_settings(overrides: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The ``LayerMaskOptimization.attribute`` arguments a text explanation uses:
    :data:`TEXT_SETTINGS` with ``overrides`` on top."""
    return {**TEXT_SETTINGS, **(overrides or {})}


@dataclass
class TextEncoding:
    """A tokenized batch and how its tokens map to words.

    Attributes:
        texts: the raw strings.
        input_ids, attention_mask: ``(N, T)`` model inputs, or ``(N, W, T)`` when the
            texts are cut into ``W`` windows (unused windows are all padding).
        word_index: same shape, the word of the text each token belongs to, -1 for
            special tokens and padding.
        word_spans: per text, the ``(start, end)`` character offsets of each word.
    """

    texts: List[str]
    input_ids: Tensor
    attention_mask: Tensor
    word_index: Tensor
    word_spans: List[List[Tuple[int, int]]]

    @property
    def special(self) -> Tensor:
        """Bool, shaped like ``input_ids``: special tokens and padding."""
        return self.word_index < 0

    @property
    def windowed(self) -> bool:
        """Whether the tensors are ``(N, W, T)`` windows."""
        return self.input_ids.dim() == 3

    def feature_mask(self) -> Tensor:
        """Group ids for a layer output, ``input_ids``' shape plus a trailing 1: word
        ``w`` is group ``w + 1`` in every window it appears in; special tokens and
        padding share group 0 (pinned)."""
        return (self.word_index + 1).unsqueeze(-1)

    def select(self, rows: Sequence[int]) -> "TextEncoding":
        """The texts ``rows`` of a windowed encoding, without the token positions and
        windows that are padding in all of them (right padding)."""
        index = torch.as_tensor(list(rows), device=self.input_ids.device)
        attention = self.attention_mask[index]
        used = attention.reshape(-1, attention.shape[-1]).any(0).nonzero()
        length = int(used.max()) + 1 if len(used) else 1
        windows = max(int(attention.any(-1).sum(-1).max()), 1)
        window_slice = (index, slice(0, windows), slice(0, length))
        return TextEncoding(
            [self.texts[row] for row in rows], self.input_ids[window_slice],
            self.attention_mask[window_slice], self.word_index[window_slice],
            [self.word_spans[row] for row in rows],
        )

    def baseline_ids(self, pad_id: int) -> Tensor:
        """The removal baseline, shaped like ``input_ids``: ``pad_id`` at every word
        piece, the input's own ids at special tokens and padding. Removing words then
        never removes ``[CLS]``/``[SEP]``, which the evaluation metrics keep too and a
        ``[CLS]`` head reads (an all-pad baseline would take them out of every kept
        view)."""
        return torch.where(self.special, self.input_ids, torch.full_like(self.input_ids, pad_id))


@dataclass
class WordAttribution:
    """One text's explanation at word level.

    Attributes:
        text: the original string.
        words: the words, as ``text[start:end]`` of ``spans``.
        spans: ``(start, end)`` character offsets of each word in ``text``.
        scores: ``(n_words,)`` attribution per word, higher = more important.
        target: the class explained; ``probability``: its probability on the full text.
        method: the name of the attribution method.
    """

    text: str
    words: List[str]
    spans: List[Tuple[int, int]]
    scores: Tensor
    target: int
    probability: float
    method: str = "MaskOptimization"
    extra: Dict[str, Any] = field(default_factory=dict)

    def rationale(
        self, top_fraction: Optional[float] = None, threshold: Optional[float] = None
    ) -> Tensor:
        """The words of the rationale as a bool ``(n_words,)`` tensor: the top
        ``top_fraction`` of words (at least one), or those scoring above
        ``threshold``. Give exactly one of the two."""
        if (top_fraction is None) == (threshold is None):
            raise ValueError("give exactly one of top_fraction and threshold")
        if threshold is not None:
            return self.scores > threshold
        assert top_fraction is not None
        if not 0 < top_fraction <= 1:
            raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction}")
        count = max(1, round(len(self.words) * top_fraction)) if self.words else 0
        chosen = torch.zeros(len(self.words), dtype=torch.bool)
        chosen[self.scores.argsort(descending=True, stable=True)[:count]] = True
        return chosen

    def rationale_spans(
        self, top_fraction: Optional[float] = None, threshold: Optional[float] = None
    ) -> List[Tuple[int, int]]:
        """The rationale as character spans of ``text``, neighbouring words merged."""
        chosen = self.rationale(top_fraction, threshold).tolist()
        spans: List[Tuple[int, int]] = []
        for keep, (start, end), previous in zip(chosen, self.spans, [False] + chosen[:-1]):
            if keep and previous and spans:
                spans[-1] = (spans[-1][0], end)
            elif keep:
                spans.append((start, end))
        return spans

    def visualization_record(self, label: Optional[int] = None) -> Any:
        """A Captum ``VisualizationDataRecord`` for ``visualize_text``."""
        from captum.attr import visualization

        peak = float(self.scores.abs().max()) if len(self.words) else 1.0
        normalised = self.scores / (peak if peak > 0 else 1.0)
        return visualization.VisualizationDataRecord(
            normalised, self.probability, self.target,
            self.target if label is None else label, self.target,
            float(self.scores.sum()), self.words, 0.0,
        )


@dataclass
class EmbeddingSpace:
    """A text batch seen from the embedding layer's output (see
    :meth:`TextExplainer.embedding_space`).

    Attributes:
        forward: ``forward(embeddings, attention_mask) -> logits``, the model with the
            embedding layer's output replaced by ``embeddings``.
        embeddings: ``(N, T, D)`` the layer's output for the texts.
        baselines: ``(N, T, D)`` its output for all-pad ids.
        feature_mask: ``(N, T, 1)`` word groups (0: special tokens and padding).
    """

    forward: Callable[[Tensor, Tensor], Tensor]
    embeddings: Tensor
    baselines: Tensor
    feature_mask: Tensor

    def baselines_keeping_specials(self) -> Tensor:
        """``baselines`` with the texts' own embeddings at special tokens and padding
        (group 0): :meth:`TextEncoding.baseline_ids` seen from the layer's output."""
        return torch.where(self.feature_mask == 0, self.embeddings, self.baselines)


def _mean_over_windows(logits: Tensor, attention_mask: Tensor) -> Tensor:
    """Logits ``(N * W, C)`` of windows as ``(N, C)``: each text's mean over its
    windows, all-padding windows (``attention_mask`` ``(N, W, T)``) left out."""
    n, windows = attention_mask.shape[:2]
    logits = logits.reshape(n, windows, -1)
    used = attention_mask.any(-1, keepdim=True)
    # Selected, not multiplied by 0: a model that masks padded keys with -inf gives a
    # window of padding alone NaN logits, and NaN times 0 is NaN.
    return torch.where(used, logits, torch.zeros_like(logits)).sum(1) / used.sum(1).to(logits.dtype)


def _stack_windows(
    tensors: Sequence[Tensor], text_of_row: Sequence[int], n_texts: int, fill: Sequence[int]
) -> List[Tensor]:
    """Rows ``(R, T)`` of windows, in text order, as ``(N, W, T)``; texts with fewer
    windows get windows of ``fill`` (all padding)."""
    counts = torch.bincount(torch.as_tensor(text_of_row), minlength=n_texts)
    slot = [0] * len(text_of_row)
    seen = [0] * n_texts
    for row, text in enumerate(text_of_row):
        slot[row], seen[text] = seen[text], seen[text] + 1
    shape = (n_texts, int(counts.max()), tensors[0].shape[1])
    stacked = []
    for tensor, value in zip(tensors, fill):
        out = torch.full(shape, value, dtype=tensor.dtype)
        out[torch.as_tensor(text_of_row), torch.as_tensor(slot)] = tensor
        stacked.append(out)
    return stacked


#: What one more optimization run costs on the CPU, in padded token positions: about
#: 16 (the model's and the loop's fixed cost per forward and backward pass against
#: its cost per token, measured on the packaged MiniLM with 2 threads, where one run
#: of 8 snippets pads a third of its positions or more, and runs split by this rule
#: took 10 % fewer seconds on validation snippets, 20 % on test snippets and 25 % on
#: test paragraphs; ``benchmarks/bench_chunks.py``).
_RUN_COST_POSITIONS = 16
#: The most texts in one run, which bounds the search below and a run's memory.
_MOST_TEXTS_PER_RUN = 64


def _length_chunks(windows: Sequence[int], longest: Sequence[int]) -> List[List[int]]:
    """Texts (their window counts and longest windows, in tokens) split into runs of
    similar lengths: runs of consecutive texts in the order of their token positions,
    chosen (exactly, by dynamic programming) to make the padded positions, each run's
    texts times its most windows times its longest window, plus
    :data:`_RUN_COST_POSITIONS` per run, smallest."""
    order = sorted(range(len(windows)), key=lambda i: (windows[i] * longest[i], longest[i]))
    best = [0.0] + [float("inf")] * len(order)
    start = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        most_windows = most_tokens = 0
        for first in range(end - 1, max(end - _MOST_TEXTS_PER_RUN, 0) - 1, -1):
            most_windows = max(most_windows, windows[order[first]])
            most_tokens = max(most_tokens, longest[order[first]])
            cost = best[first] + (end - first) * most_windows * most_tokens + _RUN_COST_POSITIONS
            if cost < best[end]:
                best[end], start[end] = cost, first
    runs: List[List[int]] = []
    end = len(order)
    while end > 0:
        runs.append(sorted(order[start[end]:end]))
        end = start[end]
    return runs[::-1]


class _WindowLogits:
    """The model's logits of windows ``(R, T, D)`` (with their attention masks ``(R,
    T)``) as ``(R, C)``, for the views of one windowed call. The final ranking reads
    hard rationales that differ from one another in a word or two, so most of a long
    text's windows recur unchanged from view to view: a window read without gradients
    whose embeddings and attention mask were read before is not run again (rerunning
    them made the seconds grow with the words times the windows). All-padding windows
    (a shorter text's, in a batch with a longer one) are not run and get zeros, which
    :func:`_mean_over_windows` leaves out, and a text's last window, shorter than the
    others, is run without their padding."""

    def __init__(self, forward: Callable[[Tensor, Tensor], Tensor]) -> None:
        self._forward = forward
        self._known: Dict[bytes, Tensor] = {}

    def __call__(self, values: Tensor, attention_mask: Tensor) -> Tensor:
        used = attention_mask.any(-1).nonzero().squeeze(1)
        if used.numel() == 0:
            return self._forward(values, attention_mask)
        if values.requires_grad:
            # The optimization's soft views: new at every step, and differentiated.
            return self._scattered(values.shape[0], used, self._run(values, attention_mask, used))
        keys = self._keys(values[used], attention_mask[used])
        fresh: Dict[bytes, int] = {}
        for row, key in zip(used.tolist(), keys):
            if key not in self._known:
                fresh.setdefault(key, row)
        if fresh:
            rows = torch.tensor(list(fresh.values()), device=values.device)
            computed = self._run(values, attention_mask, rows)
            self._known.update(zip(fresh, computed.detach()))
        return self._scattered(values.shape[0], used, torch.stack([self._known[key] for key in keys]))

    def _run(self, values: Tensor, attention_mask: Tensor, rows: Tensor) -> Tensor:
        """The model's logits of the windows ``rows``, in that order: on the CPU in
        runs of similar lengths (:func:`_length_chunks`, as :meth:`TextExplainer.explain`
        runs texts), each without the padding that all its windows end with."""
        positions = torch.arange(1, attention_mask.shape[1] + 1, device=attention_mask.device)
        lengths = ((attention_mask[rows] != 0) * positions).amax(-1).tolist()
        if values.device.type == "cpu":
            runs = _length_chunks([1] * len(lengths), lengths)
        else:
            # On an accelerator padding costs next to nothing until the batch fills it.
            runs = [list(range(len(lengths)))]
        order, logits = [], []
        for run in runs:
            width = max(lengths[i] for i in run)
            chosen = rows[torch.tensor(run, device=rows.device)]
            logits.append(self._forward(values[chosen, :width], attention_mask[chosen, :width]))
            order += run
        result = torch.cat(logits)
        return result if order == sorted(order) else result[torch.tensor(order).argsort().to(result.device)]

    @staticmethod
    def _scattered(n_rows: int, rows: Tensor, logits: Tensor) -> Tensor:
        """``logits`` of ``rows`` placed in ``(n_rows, C)`` zeros."""
        return logits.new_zeros(n_rows, logits.shape[-1]).index_put((rows,), logits)

    @staticmethod
    def _keys(values: Tensor, attention_mask: Tensor) -> List[bytes]:
        """A digest of each window's bytes: its embeddings and its attention mask."""
        content = values.detach().contiguous().cpu().view(torch.uint8).reshape(values.shape[0], -1).numpy()
        masks = attention_mask.contiguous().cpu().view(torch.uint8).reshape(values.shape[0], -1).numpy()
        return [
            hashlib.blake2b(window.tobytes() + mask.tobytes(), digest_size=16).digest()
            for window, mask in zip(content, masks)
        ]


def _single_window(encoding: TextEncoding) -> TextEncoding:
    """A windowed encoding whose texts all fit in one window, as ``(N, T)``."""
    return TextEncoding(
        encoding.texts, encoding.input_ids[:, 0], encoding.attention_mask[:, 0],
        encoding.word_index[:, 0], encoding.word_spans,
    )


def _default_layer(model: nn.Module) -> nn.Module:
    """The embeddings module whose output is masked: the whole embeddings block (word,
    position and type embeddings, LayerNorm) when the model exposes one, so baselines
    run through it exactly like the inputs."""
    for owner in (model, getattr(model, "base_model", None)):
        layer = getattr(owner, "embeddings", None)
        if isinstance(layer, nn.Module):
            return layer
    if hasattr(model, "get_input_embeddings"):
        result: nn.Module = model.get_input_embeddings()  # type: ignore[operator]
        return result
    raise ValueError(
        "could not find the model's embedding layer; pass layer= (e.g. model.bert.embeddings)"
    )


def _config_label_names(model: nn.Module) -> Optional[List[str]]:
    """``config.id2label`` as a list, unless it is missing or the default ``LABEL_i``."""
    id2label = getattr(getattr(model, "config", None), "id2label", None)
    if not id2label:
        return None
    names = [str(id2label[i]) for i in sorted(int(k) for k in id2label)]
    if all(name == f"LABEL_{i}" for i, name in enumerate(names)):
        return None
    return names


def _class_count(model: nn.Module) -> Optional[int]:
    count = getattr(getattr(model, "config", None), "num_labels", None)
    if count is None:
        count = getattr(model, "n_classes", None)
    return int(count) if isinstance(count, int) else None


class TextExplainer:
    """Explain a text classifier's predictions on raw strings at word level.

    Args:
        model: a sequence classifier taking ``(input_ids, attention_mask)`` (keyword
            or positional) and returning logits or an output with ``.logits``.
        tokenizer: its fast tokenizer (word boundaries come from ``word_ids()``).
        layer: the embedding module to mask. Default: ``model.embeddings`` or
            ``model.base_model.embeddings`` (the whole embeddings block), else
            ``model.get_input_embeddings()``.
        max_length: longest tokenized input (one window), special tokens included.
            Default: the tokenizer's ``model_max_length`` capped at 512.
        window_overlap: how many tokens consecutive windows of a longer text share in
            :meth:`explain`, so that every word is seen with some context on both
            sides. Default: a quarter of ``max_length``.
        label_names: the classes' names, by index. Default: the model's
            ``config.id2label`` when it has one, else None.

    :meth:`from_pretrained` loads a saved Hugging Face classifier folder and
    :meth:`from_pipeline` takes a ``text-classification`` pipeline.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        layer: Optional[nn.Module] = None,
        max_length: Optional[int] = None,
        window_overlap: Optional[int] = None,
        label_names: Optional[Sequence[str]] = None,
    ) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError("tokenizer must be a fast tokenizer (it maps tokens to words)")
        self.model = model
        self.tokenizer = tokenizer
        self.layer = _default_layer(model) if layer is None else layer
        limit = min(int(getattr(tokenizer, "model_max_length", 512) or 512), 512)
        config = getattr(model, "config", None)
        positions = getattr(config, "max_position_embeddings", None)
        if isinstance(positions, int) and positions > 2:
            # A small model's position table, not its tokenizer, bounds its input;
            # RoBERTa-style models number positions from padding_idx + 1.
            model_type = str(getattr(config, "model_type", ""))
            if "roberta" in model_type or model_type in ("camembert", "longformer"):
                positions -= int(getattr(config, "pad_token_id", 1) or 1) + 1
            limit = min(limit, positions)
        self.max_length = limit if max_length is None else int(max_length)
        room = self.max_length - tokenizer.num_special_tokens_to_add()
        if room < 2:
            raise ValueError(f"max_length must leave room for 2 tokens, got {max_length}")
        self.window_overlap = room // 4 if window_overlap is None else int(window_overlap)
        if not 0 <= self.window_overlap < room:
            raise ValueError(
                f"window_overlap must be in [0, {room}) for max_length={self.max_length}, "
                f"got {window_overlap}"
            )
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._n_classes: Optional[int] = None
        self.label_names: Optional[List[str]] = (
            _config_label_names(model) if label_names is None else [str(name) for name in label_names]
        )

    @classmethod
    def from_pretrained(cls, path: Union[str, "os.PathLike[str]"], **kwargs: Any) -> "TextExplainer":
        """The classifier saved in the local folder ``path`` (by ``save_pretrained``:
        an ``AutoModelForSequenceClassification`` and its tokenizer), in evaluation
        mode; nothing is downloaded. ``kwargs`` go to the constructor.

        Raises:
            FileNotFoundError: when ``path`` is not a folder with a ``config.json``.
            InputError: when the folder's model has no trained classification head
                (a bare encoder, say), whose weights would otherwise be random.
        """
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"{folder} is not a Hugging Face model folder (no config.json); save one "
                "with model.save_pretrained(folder) and tokenizer.save_pretrained(folder)"
            )
        from transformers.utils import logging as transformers_logging

        verbosity = transformers_logging.get_verbosity()
        bar = transformers_logging.is_progress_bar_enabled()
        # The report of newly initialised head weights is turned into the error below.
        transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model, info = AutoModelForSequenceClassification.from_pretrained(
                    folder, output_loading_info=True, local_files_only=True
                )
        finally:
            transformers_logging.set_verbosity(verbosity)
            if bar:
                transformers_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
        if info.get("missing_keys"):
            missing = sorted(info["missing_keys"])
            raise InputError(
                f"{folder} holds no classification head: the weights {', '.join(missing[:4])}"
                f"{' ...' if len(missing) > 4 else ''} are missing, and would be random. Fine-tune "
                "a sequence classifier and save it with save_pretrained"
            )
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        return cls(model.eval(), tokenizer, **kwargs)

    @classmethod
    def from_pipeline(cls, pipeline: Any, **kwargs: Any) -> "TextExplainer":
        """The model, tokenizer and label names of a ``transformers``
        ``text-classification`` pipeline. ``kwargs`` go to the constructor."""
        model = getattr(pipeline, "model", None)
        tokenizer = getattr(pipeline, "tokenizer", None)
        if not isinstance(model, nn.Module) or tokenizer is None:
            raise TypeError(
                "pipeline must be a transformers text-classification pipeline (with .model "
                f"and .tokenizer), got {type(pipeline).__name__}"
            )
        return cls(model, tokenizer, **kwargs)

    def class_index(self, target: Any, argument: str = "target") -> int:
        """The index of a class given by index (also as read from a file: ``"1"``,
        ``1.0``) or by one of :attr:`label_names`; ``argument`` names it in errors."""
        if isinstance(target, float) and target.is_integer():
            target = int(target)
        elif isinstance(target, str) and target.strip().lstrip("-").isdigit() and not (
            self.label_names and target in self.label_names
        ):
            target = int(target)
        if isinstance(target, int) and not isinstance(target, bool):
            n_classes = self.n_classes
            if not 0 <= target < n_classes:
                raise InputError(f"{argument}: class {target} is out of range for {n_classes} classes")
            return target
        if isinstance(target, str) and self.label_names and target in self.label_names:
            return self.label_names.index(target)
        names = f"one of {self.label_names}" if self.label_names else "a class index (the model has no label names)"
        raise InputError(f"{argument}: expected {names}, got {target!r}")

    @property
    def n_classes(self) -> int:
        """The number of classes: the model config's ``num_labels`` or its
        ``n_classes``, else the width of its output on a one-word text (one forward
        pass, the first time)."""
        if self._n_classes is None:
            count = _class_count(self.model)
            self._n_classes = self.predict(self.encode(["a"])).shape[-1] if count is None else count
        return self._n_classes

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """The model's logits, whatever its output type."""
        output = self.model(input_ids=input_ids, attention_mask=attention_mask)
        result: Tensor = output.logits if hasattr(output, "logits") else output
        return result

    def document_forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Logits ``(N, C)`` of windowed texts ``(N, W, T)``: the mean over each text's
        windows (all-padding windows left out)."""
        length = input_ids.shape[-1]
        logits = self.forward(input_ids.reshape(-1, length), attention_mask.reshape(-1, length))
        return _mean_over_windows(logits, attention_mask)

    def encode(self, texts: Sequence[str], windows: bool = False) -> TextEncoding:
        """Tokenize ``texts``, padded to the longest. Without ``windows`` a text is
        truncated at ``max_length`` tokens; with it, a longer text is cut into
        windows of ``max_length`` tokens that overlap by ``window_overlap``, and the
        tensors are ``(N, W, T)``, ``W`` the most windows of any text."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("texts must be a list of strings")
        if not texts:
            raise ValueError("texts is empty")
        device = next(self.model.parameters()).device
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length,
            return_offsets_mapping=True, return_tensors="pt",
            return_overflowing_tokens=windows, stride=self.window_overlap if windows else 0,
        )
        if not windows and any(e.overflowing for e in batch.encodings):
            warn_caller(
                f"texts longer than max_length={self.max_length} tokens are truncated; "
                "explain() cuts them into windows instead"
            )
        rows, length = batch["input_ids"].shape
        text_of_row = batch["overflow_to_sample_mapping"].tolist() if windows else list(range(rows))
        offsets = batch["offset_mapping"].tolist()
        # Word ids count the words of the whole text, so a word keeps its id in every
        # window; they are renumbered 0, 1, ... in case a word has no token.
        word_ids = [batch.word_ids(row) for row in range(rows)]
        spans_of: List[Dict[int, Tuple[int, int]]] = [{} for _ in texts]
        for row, text in enumerate(text_of_row):
            for position, word in enumerate(word_ids[row]):
                if word is not None:
                    start, end = offsets[row][position]
                    old = spans_of[text].get(word, (start, end))
                    spans_of[text][word] = (min(old[0], start), max(old[1], end))
        number = [{word: i for i, word in enumerate(sorted(spans))} for spans in spans_of]
        word_index = torch.full((rows, length), -1, dtype=torch.long)
        for row, text in enumerate(text_of_row):
            for position, word in enumerate(word_ids[row]):
                if word is not None:
                    word_index[row, position] = number[text][word]
        word_spans = [[spans[w] for w in sorted(spans)] for spans in spans_of]
        tensors = [batch["input_ids"], batch["attention_mask"], word_index]
        if windows:
            tensors = _stack_windows(tensors, text_of_row, len(texts), (self.pad_id, 0, -1))
        input_ids, attention_mask, word_index = (t.to(device) for t in tensors)
        return TextEncoding(list(texts), input_ids, attention_mask, word_index, word_spans)

    def predict(self, encoding: TextEncoding) -> Tensor:
        """Class probabilities ``(N, C)`` on the full texts."""
        forward = self.document_forward if encoding.windowed else self.forward
        with torch.no_grad():
            return torch.softmax(forward(encoding.input_ids, encoding.attention_mask), dim=-1)

    def _targets(self, probabilities: Tensor, target: Union[None, int, Sequence[int], Tensor]) -> Tensor:
        """One class index per text: ``target`` (see :meth:`_given_targets`), or the
        predicted classes when it is None."""
        given = self._given_targets(target, probabilities.shape[0])
        return probabilities.argmax(dim=1) if given is None else given.to(probabilities.device)

    def word_attributions(
        self,
        encoding: TextEncoding,
        token_scores: Tensor,
        targets: Tensor,
        probabilities: Tensor,
        reduce: str,
        method: str,
    ) -> List[WordAttribution]:
        """Pool token scores (shaped like ``encoding.input_ids``) into word scores:
        ``"mean"`` when each piece carries its word's value (masks), ``"sum"`` for
        additive attributions."""
        results = []
        for row, (text, spans) in enumerate(zip(encoding.texts, encoding.word_spans)):
            words = encoding.word_index[row].reshape(-1)
            row_scores = token_scores[row].reshape(-1)
            scores = torch.zeros(len(spans), dtype=torch.float64, device=token_scores.device)
            valid = words >= 0
            scores.index_add_(0, words[valid], row_scores[valid].double())
            if reduce == "mean":
                counts = torch.bincount(words[valid], minlength=len(spans)).clamp_min(1)
                scores = scores / counts
            target = int(targets[row])
            results.append(
                WordAttribution(
                    text=text,
                    words=[text[s:e] for s, e in spans],
                    spans=spans,
                    scores=scores.cpu(),
                    target=target,
                    probability=float(probabilities[row, target]),
                    method=method,
                )
            )
        return results

    def explain(
        self,
        texts: Sequence[str],
        target: Union[None, int, Sequence[int], Tensor] = None,
        **attribute_kwargs: Any,
    ) -> List[WordAttribution]:
        """Word-level mask-optimization explanations of ``texts``.

        Args:
            texts: the raw strings.
            target: the class to explain per text (an int for all, or one per text);
                default the predicted class.
            **attribute_kwargs: passed to :meth:`LayerMaskOptimization.attribute`
                (``n_steps``, loss weights; ``return_record`` is not allowed here);
                they override :data:`TEXT_SETTINGS`.

        Words are removed to the pad token's embedding; special tokens stay in both
        views (the baseline is :meth:`TextEncoding.baseline_ids`). On the CPU, texts of
        very different lengths are optimized in separate runs of similar lengths
        (``_length_chunks``), so that short texts do not pay for a long one's
        padding; each text's mask is its own whatever the batch (to float rounding).

        Returns:
            One :class:`WordAttribution` per text, in the order of ``texts``; word
            scores are mask values in [0, 1]. The optimization record of each text is
            in ``extra["record"]``.
        """
        if "return_record" in attribute_kwargs:
            raise TypeError("explain() always records: read WordAttribution.extra['record']")
        encoding = self.encode(texts, windows=True)
        targets = self._given_targets(target, len(encoding.texts))
        if encoding.input_ids.device.type != "cpu":
            # On an accelerator padding costs next to nothing until the batch fills it.
            return self._explain_encoding(encoding, targets, attribute_kwargs)
        used = encoding.attention_mask.sum(-1)
        windows, longest = (used > 0).sum(-1), used.max(-1).values
        results: Dict[int, WordAttribution] = {}
        for rows in _length_chunks(windows.tolist(), longest.tolist()):
            part = encoding.select(rows)
            chosen = None if targets is None else targets[torch.as_tensor(rows, device=targets.device)]
            results.update(zip(rows, self._explain_encoding(part, chosen, attribute_kwargs)))
        return [results[row] for row in range(len(encoding.texts))]

    def _given_targets(self, target: Union[None, int, Sequence[int], Tensor], n: int) -> Optional[Tensor]:
        """``target`` as one class index per text, or None (the predicted classes)."""
        if target is None:
            return None
        device = next(self.model.parameters()).device
        if isinstance(target, int) and not isinstance(target, bool):
            return torch.full((n,), target, dtype=torch.long, device=device)
        chosen = torch.as_tensor(target, device=device)
        if chosen.is_floating_point() or chosen.dtype == torch.bool or chosen.numel() not in (1, n):
            raise ValueError(
                f"target must be None, an int or one class index per text ({n}), got {target!r}"
            )
        # One index (a 0-d or one-element tensor) means that class for every text, as in Captum.
        return chosen.to(torch.long).reshape(-1).expand(n).clone()

    def _explain_encoding(
        self, encoding: TextEncoding, targets: Optional[Tensor], attribute_kwargs: Mapping[str, Any]
    ) -> List[WordAttribution]:
        """:meth:`explain` of one windowed encoding, as one optimization run."""
        if encoding.input_ids.shape[1] == 1:
            encoding = _single_window(encoding)
        probabilities = self.predict(encoding)
        targets = self._targets(probabilities, targets)
        settings = dict(
            target=targets,
            additional_forward_args=(encoding.attention_mask,),
            feature_mask=encoding.feature_mask(),
            pinned_features=encoding.special.unsqueeze(-1),
            return_record=True,
            **text_settings(attribute_kwargs),
        )
        if encoding.windowed:
            attributions, record = self._explain_windows(encoding, settings)
        else:
            attributions, record = LayerMaskOptimization(self.forward, self.layer).attribute(
                encoding.input_ids,
                baselines=encoding.baseline_ids(self.pad_id),
                **settings,
            )
        results = self.word_attributions(
            encoding, attributions[..., 0], targets, probabilities, "mean", "MaskOptimization"
        )
        for row, result in enumerate(results):
            result.extra["record"] = {
                name: float(getattr(record, name)[row])
                for name in ("steps", "keep_probability", "remove_probability", "kept_fraction")
            }
        return results

    def _explain_windows(self, encoding: TextEncoding, settings: Dict[str, Any]) -> Tuple[Tensor, Any]:
        """MaskOptimization of the embedding layer's output for all windows of each
        text at once, ``(N, W, T, D)``: one value per word of the text, fed back into
        the model through a hook on the layer."""
        n, windows, length = encoding.input_ids.shape
        flat = TextEncoding(
            encoding.texts, encoding.input_ids.reshape(-1, length),
            encoding.attention_mask.reshape(-1, length), encoding.word_index.reshape(-1, length),
            encoding.word_spans,
        )
        with self.embedding_space(flat) as space:
            window_logits = _WindowLogits(space.forward)

            def masked_forward(values: Tensor, attention_mask: Tensor) -> Tensor:
                logits = window_logits(
                    values.reshape(-1, length, values.shape[-1]), attention_mask.reshape(-1, length)
                )
                return _mean_over_windows(logits, attention_mask)

            result: Tuple[Tensor, Any] = MaskOptimization(masked_forward).attribute(
                space.embeddings.reshape(n, windows, length, -1),
                baselines=space.baselines_keeping_specials().reshape(n, windows, length, -1),
                **settings,
            )
            return result

    def explain_with(
        self,
        attribution: Callable[[Callable[..., Tensor], nn.Module], Any],
        texts: Sequence[str],
        target: Union[None, int, Sequence[int], Tensor] = None,
        name: Optional[str] = None,
        pad_baselines: bool = True,
        reduce: str = "sum",
        keep_special_tokens: bool = False,
        **attribute_kwargs: Any,
    ) -> List[WordAttribution]:
        """Word-level explanations from any Captum layer attribution, on the same
        tokenization: ``attribution(forward, layer)`` builds it (e.g.
        ``LayerIntegratedGradients``); token scores are its attributions summed over
        the hidden dimension, word scores the sum over the word's pieces
        (``reduce="sum"``, for additive attributions) or their mean (``"mean"``, for
        values that are not additive, such as a mask's kept shares). Texts longer
        than ``max_length`` tokens are truncated (with a warning): Captum's layer
        methods see one window. With ``pad_baselines`` the method gets the pad ids as
        ``baselines`` (leave it off for methods without baselines, such as
        ``LayerGradientXActivation``); with ``keep_special_tokens`` too, the special
        tokens and padding keep their own ids in them (:meth:`TextEncoding.baseline_ids`,
        the removal of :meth:`explain` and of the metrics)."""
        encoding = self.encode(texts)
        probabilities = self.predict(encoding)
        targets = self._targets(probabilities, target)
        method = attribution(self.forward, self.layer)
        if pad_baselines:
            baselines = (encoding.baseline_ids(self.pad_id) if keep_special_tokens
                         else torch.full_like(encoding.input_ids, self.pad_id))
            attribute_kwargs = dict(attribute_kwargs, baselines=baselines)
        attributions = method.attribute(
            encoding.input_ids,
            target=targets,
            additional_forward_args=(encoding.attention_mask,),
            **attribute_kwargs,
        )
        if isinstance(attributions, tuple):
            attributions = attributions[0]
        token_scores = attributions.detach().reshape(*encoding.input_ids.shape, -1).sum(-1)
        if reduce not in ("sum", "mean"):
            raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
        return self.word_attributions(
            encoding, token_scores, targets, probabilities, reduce, name or type(method).__name__
        )

    def explain_with_perturbation(
        self,
        attribution: Callable[[Callable[..., Tensor]], Any],
        texts: Sequence[str],
        target: Union[None, int, Sequence[int], Tensor] = None,
        name: Optional[str] = None,
        **attribute_kwargs: Any,
    ) -> List[WordAttribution]:
        """Word-level explanations from a Captum perturbation method that works on
        inputs only (``FeatureAblation``, ``Lime``, ``KernelShap``,
        ``ShapleyValueSampling``), run on the embedding layer's *output*: the words are
        its features (``feature_mask``), the pad-token embeddings at the words its
        baseline, the same removal as mask optimization's (the special tokens and
        padding, feature group 0, keep their own embeddings in it, so removing that
        group changes nothing: as the metrics do, no sample takes ``[CLS]`` or
        ``[SEP]`` out). ``attribution(forward)`` builds it, with
        ``forward(embeddings, attention_mask)`` running the model on given embeddings.
        Texts are explained one at a time, since Lime and KernelShap fit one surrogate
        per call; word scores are the value of each word's pieces."""
        encoding = self.encode(texts)
        probabilities = self.predict(encoding)
        targets = self._targets(probabilities, target)
        scores = []
        with self.embedding_space(encoding) as space:
            method = attribution(space.forward)
            baselines = space.baselines_keeping_specials()
            for row in range(len(encoding.texts)):
                one = slice(row, row + 1)
                attributions = method.attribute(
                    space.embeddings[one],
                    baselines=baselines[one],
                    target=targets[one],
                    additional_forward_args=(encoding.attention_mask[one],),
                    feature_mask=space.feature_mask[one],
                    **attribute_kwargs,
                )
                # One value per word, repeated over D and over the word's pieces.
                scores.append(attributions.detach()[..., 0])
        return self.word_attributions(
            encoding, torch.cat(scores), targets, probabilities, "mean", name or type(method).__name__
        )

    @contextlib.contextmanager
    def embedding_space(self, encoding: TextEncoding) -> Iterator[EmbeddingSpace]:
        """The embedding layer's outputs for ``encoding`` and for all-pad ids, and a
        forward function from embeddings, valid inside the ``with`` block (a hook on
        the layer feeds the given embeddings in; it is removed on leaving)::

            with explainer.embedding_space(encoding) as space:
                logits = space.forward(space.baselines, encoding.attention_mask)
        """
        switch = LayerSwitch(self.layer, False, None)
        try:
            _, embedded = switch.record(lambda: self.forward(encoding.input_ids, encoding.attention_mask))
            _, baseline = switch.record(
                lambda: self.forward(torch.full_like(encoding.input_ids, self.pad_id), encoding.attention_mask)
            )
            if len(embedded) != 1:
                raise TypeError("layer must return one tensor to be replaced by embeddings")
            # The ids only set the shapes: the layer's output is replaced.
            forward = switch.substituting(self._forward_placeholder_ids, 1)
            yield EmbeddingSpace(forward, embedded[0], baseline[0], encoding.feature_mask())
        finally:
            switch.remove()

    def _forward_placeholder_ids(self, attention_mask: Tensor) -> Tensor:
        """The model on pad ids shaped like ``attention_mask``, for a forward pass whose
        embedding output is substituted."""
        return self.forward(torch.full_like(attention_mask, self.pad_id), attention_mask)
