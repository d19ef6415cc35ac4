"""The checkpoint file of a text comparison: one JSON line per finished batch, so that
a stopped comparison goes on where it stopped and a summary can be read at any time.

A line is ``{"run": RUN, "batch": KEY, "result": RESULT}``. ``RUN`` digests what every
method's results depend on besides the batch and the method's own settings: the model
(see :func:`model_fingerprint`), the package version and the seed; ``KEY`` digests the
part of the comparison, the method's name as filed (see :func:`method_name`), which
carries a tag of its settings, and the batch's texts and labels. Each batch draws its
random numbers from a seed of its own (:func:`~captum_maskopt.hashing.seeded_draws` of
the seed and the batch's key), so a resumed run gives what an uninterrupted one would.

A path ending in ``.xz`` or ``.gz`` is kept compressed (the per-word scores of long
documents make a plain file large): each finished batch is appended as a compressed
stream of its own, so a run killed mid-write loses at most that batch, and opening the
file again rewrites it as one stream (:func:`compact_checkpoint`), which compresses far
better because the batches of one document repeat its text.

Every row is filed under a name that says what it ran with. This package's rows: the
settings given over the defaults, and a tag of the defaults themselves
(:func:`defaults_tag`), e.g. ``MaskOptimization @1a2b3c4d`` or
``MaskOptimization {"n_steps": 50} @1a2b3c4d``; Captum's methods: a tag of the
keywords the comparison calls them with (:func:`peer_tag`), e.g.
``Lime @5e6f7a8b``. So a change of a default, or of what an ``"auto"`` default
resolves to, reruns this package's rows only, and a change of one peer's settings
that peer's rows only; the other batches are read again.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import lzma
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Protocol, Sequence, Tuple, Union

from torch import nn

import captum_maskopt
from captum_maskopt.output import write_atomically
from captum_maskopt.settings import DEFAULTS_REVISION, PRESETS
from captum_maskopt.text.classifier import SentimentClassifier, weights_digest
from captum_maskopt.text.integration import text_settings
from captum_maskopt.text.peers import PEER_SETTINGS

__all__ = [
    "Checkpoint", "read_checkpoint", "batch_key", "batch_labels", "compact_checkpoint",
    "defaults_tag", "filed_method", "filed_parts", "method_name", "model_fingerprint", "peer_tag", "results_of",
    "run_key", "runs_of", "write_checkpoint",
]

PathLike = Union[str, Path]


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes) -> bytes: ...


#: Per compressed suffix: a fresh decompressor of one stream, and the compression of one.
_CODECS: Dict[str, Tuple[Callable[[], _Decompressor], Callable[[bytes], bytes]]] = {
    ".xz": (lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ), lambda data: lzma.compress(data, preset=6)),
    ".gz": (lambda: zlib.decompressobj(wbits=16 + zlib.MAX_WBITS), lambda data: gzip.compress(data, 9, mtime=0)),
}


def _codec(path: Path) -> Optional[Tuple[Callable[[], _Decompressor], Callable[[bytes], bytes]]]:
    return _CODECS.get(path.suffix.lower())


def _read_streams(path: Path) -> Tuple[str, int, int]:
    """The text of the file's complete compressed streams, how many there are, and the
    byte length they take (a stream cut short when a run was killed, and what follows
    it, is left out); a plain file's whole text, 1 and its length."""
    data = path.read_bytes()
    codec = _codec(path)
    if codec is None:
        return data.decode("utf-8", errors="replace"), 1, len(data)
    parts, streams, offset = [], 0, 0
    while offset < len(data):
        decompressor = codec[0]()
        try:
            text = decompressor.decompress(data[offset:])
        except (lzma.LZMAError, zlib.error):
            break
        if not decompressor.eof:
            break
        parts.append(text)
        streams += 1
        offset = len(data) - len(decompressor.unused_data)
    return b"".join(parts).decode("utf-8", errors="replace"), streams, offset


def _complete_lines(text: str) -> Iterator[Dict[str, Any]]:
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and {"run", "batch", "result"} <= set(entry):
            yield entry


def read_checkpoint(path: PathLike) -> Iterator[Dict[str, Any]]:
    """The complete lines of a checkpoint file (plain, ``.xz`` or ``.gz``) as dicts with
    ``run``, ``batch`` and ``result``; a line or stream cut short when a run was killed
    is skipped."""
    yield from _complete_lines(_read_streams(Path(path))[0])


def compact_checkpoint(path: PathLike) -> None:
    """Rewrite a compressed checkpoint file as one stream of its complete lines,
    dropping a stream cut short; the file is replaced at once, so a kill midway leaves
    the old one. Nothing to do for a plain file or one that is a single whole stream."""
    path = Path(path)
    codec = _codec(path)
    if codec is None or not path.exists():
        return
    text, streams, length = _read_streams(path)
    if streams == 0 and length < path.stat().st_size:
        raise ValueError(f"checkpoint {path} holds no complete {path.suffix} stream; "
                         "expected a file this package wrote (or none)")
    if streams <= 1 and length == path.stat().st_size:
        return
    _write_lines(path, [line for line in text.splitlines() if line])


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    codec = _codec(path)
    write_atomically(path, data if codec is None else codec[1](data))


def write_checkpoint(path: PathLike, entries: Sequence[Mapping[str, Any]]) -> None:
    """Replace the file with ``entries`` (dicts with ``run``, ``batch`` and ``result``,
    as :func:`read_checkpoint` gives them), compressed as its suffix says, at once: a
    kill midway leaves the old file."""
    _write_lines(Path(path), [json.dumps(dict(entry)) for entry in entries])


def model_fingerprint(model: nn.Module) -> str:
    """A SHA-1 digest that identifies the model's function.

    The project's classifiers (:func:`~captum_maskopt.text.load_sentiment_classifier`
    and :func:`~captum_maskopt.text.load_shortcut_classifier`) are identified by the
    recipe that trained their head, as long as their weights are still the ones it
    left: on another CPU the same recipe gives a head that differs in the last bits of
    its weights, and a committed checkpoint should still be read there. Any other model,
    or one of those whose weights were changed, by its parameters and buffers, bit for bit.
    """
    digest = weights_digest(model)
    if isinstance(model, SentimentClassifier) and model.recipe is not None and digest == model.trained_weights:
        return hashlib.sha1(f"recipe {model.recipe}".encode()).hexdigest()
    return digest


def batch_key(part: str, name: str, texts: Sequence[str], labels: Sequence[int] = ()) -> str:
    """The key of one batch of one method in one part of the comparison."""
    return hashlib.sha1(json.dumps([part, name, list(texts), list(labels)]).encode()).hexdigest()


def batch_labels(key: str, part: str, name: str, texts: Sequence[str], n_classes: int = 2) -> List[int]:
    """The labels that, with ``part``, ``name`` and ``texts``, make the batch key
    ``key`` (:func:`batch_key`), found by trying every labelling of ``n_classes``
    classes: a filed batch stores its texts but not its labels. Raises ``ValueError``
    when none does."""
    for labels in itertools.product(range(n_classes), repeat=len(texts)):
        if batch_key(part, name, texts, labels) == key:
            return list(labels)
    raise ValueError(f"no labels of {n_classes} classes give batch {key} of {name!r} in part {part!r}")


def defaults_tag(preset: str = "default", changed: Optional[Mapping[str, Any]] = None) -> str:
    """Eight hex digits that identify what a preset computes: its settings and
    :data:`~captum_maskopt.settings.DEFAULTS_REVISION` (raised when an ``"auto"``
    choice resolves anew while no value changes); with ``changed``, what it would
    compute with those fields changed (the tag of earlier defaults)."""
    settings = PRESETS[preset].with_overrides(**dict(changed or {}))
    record = json.dumps([settings.as_record(), DEFAULTS_REVISION], sort_keys=True)
    return hashlib.sha1(record.encode()).hexdigest()[:8]


def peer_tag(name: str, peer_settings: Optional[Mapping[str, Mapping[str, Any]]] = None) -> str:
    """Eight hex digits that identify what one of Captum's methods computes in the
    comparison: its keywords there, in ``peer_settings`` (None:
    :data:`~captum_maskopt.text.peers.PEER_SETTINGS`)."""
    record = json.dumps(dict((PEER_SETTINGS if peer_settings is None else peer_settings).get(name, {})),
                        sort_keys=True)
    return hashlib.sha1(record.encode()).hexdigest()[:8]


def _comparable(value: Any) -> Any:
    # JSON and the command line give lists where the settings hold tuples.
    return tuple(value) if isinstance(value, list) else value


def method_name(name: str, mask_settings: Optional[Mapping[str, Any]]) -> str:
    """The name a method's batches are filed under. Captum's methods: their name and
    ``@`` :func:`peer_tag`. MaskOptimization: its name, the settings it runs with where they differ from the
    defaults (:func:`~captum_maskopt.text.integration.text_settings` of
    ``mask_settings``; a setting given at its default value names the same run as
    leaving it out) and ``@`` :func:`defaults_tag`; LayerMaskOptimization (the
    token-level call at ``attribute()``'s own defaults) likewise with the settings given
    over those defaults; the paper's row, its name and the tag of the ``"paper"``
    preset."""
    if name == "MaskOptimization (paper)":
        return f"{name} @{defaults_tag('paper')}"
    if name == "MaskOptimization":
        chosen = text_settings(mask_settings)
    elif name == "LayerMaskOptimization":
        chosen = dict(mask_settings or {})
    else:
        return f"{name} @{peer_tag(name)}"
    defaults = PRESETS["default"].as_dict()
    given = {key: value for key, value in chosen.items()
             if key not in defaults or _comparable(value) != _comparable(defaults[key])}
    settings = f" {json.dumps(given, sort_keys=True)}" if given else ""
    return f"{name}{settings} @{defaults_tag()}"


def filed_parts(filed: str) -> Tuple[str, Dict[str, Any], str]:
    """A filed name's parts (see :func:`method_name`): the method (``"Lime"``,
    ``"MaskOptimization (paper)"``), the settings it gives over the defaults (a
    ``{...}`` JSON object, empty when none) and the tag. Raises ``ValueError`` for a
    name without ``" @TAG"``."""
    head, _, tag = filed.rpartition(" @")
    if not head:
        raise ValueError(f"filed name {filed!r} has no ' @TAG'; expected a name the comparison filed")
    method, brace, given = head.partition(" {")
    return method, json.loads(brace.strip() + given) if brace else {}, tag


def filed_method(name: str, filed: Sequence[str]) -> str:
    """The filed name (see :func:`method_name`) that ``name`` means among ``filed``:
    itself when filed, else the one filed name that is ``name`` with a tag
    (``MaskOptimization`` for ``MaskOptimization @1a2b3c4d``, ``Lime`` for
    ``Lime @5e6f7a8b``). Raises ``ValueError`` when there is none or more than one."""
    if name in filed:
        return name
    tagged = sorted({entry for entry in filed if entry.rsplit(" @", 1)[0] == name})
    if len(tagged) == 1:
        return tagged[0]
    known = ", ".join(repr(entry) for entry in sorted(set(filed)))
    if tagged:
        raise ValueError(f"{name!r} names {len(tagged)} filed methods (settings of several "
                         f"versions): give one of {', '.join(map(repr, tagged))} in full")
    raise ValueError(f"no method {name!r} is filed; the file has {known}")


def run_key(model: nn.Module, seed: int) -> str:
    """The key of a comparison's run (the ``run`` of its lines): what every method's
    results depend on besides the batch and the method's settings. The settings are
    not in it but in the rows' names (:func:`method_name`), so that a change of one
    method's settings leaves the other methods' batches valid."""
    return hashlib.sha1(json.dumps(
        [model_fingerprint(model), captum_maskopt.__version__, seed],
        sort_keys=True,
    ).encode()).hexdigest()


class Checkpoint:
    """The finished batches of a comparison of ``model`` with ``seed``, kept in the
    JSON-lines file ``path``, compressed when it ends in ``.xz`` or ``.gz`` (None keeps
    them in memory only)."""

    def __init__(self, path: Optional[PathLike], model: nn.Module, seed: int) -> None:
        self.path = None if path is None else Path(path)
        self.done: Dict[str, Dict[str, Any]] = {}
        self.run = ""
        if self.path is None:
            return
        self.run = run_key(model, seed)
        if self.path.exists() and _codec(self.path) is not None:
            compact_checkpoint(self.path)
            for entry in read_checkpoint(self.path):
                if entry["run"] == self.run:
                    self.done[entry["batch"]] = entry["result"]
        elif self.path.exists():
            content = self.path.read_text(encoding="utf-8")
            if content and not content.endswith("\n"):
                # End the cut line, so the next batch starts a line of its own.
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write("\n")
            for entry in read_checkpoint(self.path):
                if entry["run"] == self.run:
                    self.done[entry["batch"]] = entry["result"]

    def get(self, key: str) -> Optional[Dict[str, Any]]:
        """A finished batch's result, or None."""
        return self.done.get(key)

    def add(self, key: str, result: Dict[str, Any]) -> None:
        """File a finished batch, appending it to the file at once."""
        self.done[key] = result
        if self.path is None:
            return
        line = json.dumps({"run": self.run, "batch": key, "result": result}) + "\n"
        codec = _codec(self.path)
        with self.path.open("ab") as handle:
            handle.write(line.encode("utf-8") if codec is None else codec[1](line.encode("utf-8")))
            handle.flush()

    def close(self) -> None:
        """Rewrite a compressed file as one stream (:func:`compact_checkpoint`); the
        comparison calls it when its part is done."""
        if self.path is not None:
            compact_checkpoint(self.path)


def runs_of(path: PathLike) -> List[str]:
    """The run keys of the file's lines, each once, in the order of their last line
    (the run that wrote last comes last)."""
    order: Dict[str, None] = {}
    for entry in read_checkpoint(path):
        order.pop(entry["run"], None)
        order[entry["run"]] = None
    return list(order)


def results_of(path: PathLike, runs: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    """The batch results in the file, of the run keys in ``runs`` (None: every run); a
    batch filed again (rescored when a metric was added) counts once, with its last
    result."""
    latest: Dict[Tuple[str, str], Dict[str, Any]] = {}
    for entry in read_checkpoint(path):
        if runs is None or entry["run"] in runs:
            latest[(entry["run"], entry["batch"])] = entry["result"]
    return list(latest.values())
