"""Agreement with human evidence in the text comparison: a paragraph's snippets that
carry the explained class's label are its evidence (real classifier)."""

import json

import pytest
import torch

from captum_maskopt import metrics
from conftest import load_script


@pytest.fixture(scope="module")
def documents():
    from captum_maskopt.text.data import load_paragraphs, load_snippets

    # Short three-snippet paragraphs with both labels, and one snippet (no evidence).
    mixed = [p for p in load_paragraphs("validation", snippets_per_paragraph=3)
             if len({label for *_, label in p.snippets}) == 2][:3]
    return mixed + load_snippets("validation")[:1]


def _compare(sentiment, documents, **options):
    from captum_maskopt.text.compare import compare_methods
    from captum_maskopt.text.integration import TextExplainer

    return compare_methods(
        TextExplainer(*sentiment), [d.text for d in documents], [d.label for d in documents],
        ["InputXGradient"], batch_size=2, keep_attributions=len(documents),
        evidence=[d.snippets for d in documents], **options,
    )


def test_the_evidence_metrics_score_the_words_against_the_snippets_of_the_explained_class(
    sentiment, documents
):
    from captum_maskopt.text.compare import EVIDENCE_FRACTION, EVIDENCE_METRICS
    from captum_maskopt.text.data import evidence_words

    results, kept = _compare(sentiment, documents)
    row = results["InputXGradient"]
    expected = {metric: [] for metric in EVIDENCE_METRICS + ("evidence_word_share",)}
    for document, attributions in zip(documents, kept):
        word = attributions["InputXGradient"]
        gold = torch.tensor(evidence_words(document.snippets, word.spans, word.target))
        if not 0 < int(gold.sum()) < len(gold):
            continue
        scores = word.scores.double().unsqueeze(0)
        top = metrics.top_fraction_mask(scores, EVIDENCE_FRACTION)[0]
        expected["evidence_auprc"].append(float(metrics.auprc(scores, gold.unsqueeze(0))[0]))
        expected["evidence_token_f1"].append(float(metrics.token_f1(top.unsqueeze(0), gold.unsqueeze(0))[0]))
        expected["evidence_top_share"].append(float((top & gold).sum() / top.sum()))
        expected["evidence_word_share"].append(float(gold.double().mean()))
    # The snippet has no evidence to tell apart; the paragraphs have both kinds.
    assert row["evidence_documents"] == len(expected["evidence_auprc"]) == 3
    for metric, values in expected.items():
        assert row[metric] == pytest.approx(sum(values) / len(values)), metric
        assert 0 <= row[metric] <= 1
    # The other metrics still average over every document.
    assert set(row) >= {"aopc_comprehensiveness", "deletion_auc", "seconds_per_example"}


def test_a_batch_filed_without_the_evidence_metrics_is_rescored_from_its_words(
    sentiment, documents, tmp_path, monkeypatch
):
    from captum_maskopt.text import compare
    from captum_maskopt.text.checkpoint import method_name

    path = tmp_path / "run.jsonl"
    first, _ = _compare(sentiment, documents, checkpoint=path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for line in lines:
        for metric in list(line["result"]["totals"]):
            if metric.startswith("evidence_"):
                del line["result"]["totals"][metric]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))

    def no_more_work(*args, **kwargs):
        raise AssertionError("a filed batch was explained again")

    monkeypatch.setattr(compare, "_explain_batch", no_more_work)
    again, _ = _compare(sentiment, documents, checkpoint=path)
    assert again["InputXGradient"] == pytest.approx(first["InputXGradient"])
    # The summary script averages them over the evidence documents, not all documents.
    script = load_script("summarize_checkpoint")
    summary = script.summarize(path)["methods"][method_name("InputXGradient", None)]
    assert summary["documents"] == 4 and summary["evidence_documents"] == 3
    for metric in ("evidence_auprc", "evidence_token_f1", "evidence_top_share", "evidence_word_share"):
        assert summary[metric] == pytest.approx(first["InputXGradient"][metric])
        assert script.paired_difference(path, "InputXGradient", "InputXGradient")[metric]["difference"] == 0


def test_without_evidence_the_rows_have_no_evidence_columns(sentiment, documents):
    from captum_maskopt.text.compare import compare_methods, summary_table
    from captum_maskopt.text.integration import TextExplainer

    texts, labels = [d.text for d in documents[:2]], [d.label for d in documents[:2]]
    results, _ = compare_methods(TextExplainer(*sentiment), texts, labels, ["InputXGradient"])
    assert not any(metric.startswith("evidence") for metric in results["InputXGradient"])
    assert "evidence_auprc" not in summary_table(results)
    with_evidence, _ = _compare(sentiment, documents)
    assert "evidence_auprc" in summary_table(with_evidence)


@pytest.mark.parametrize("evidence, message", [
    ([()], "one sequence of spans per text"),
    ([((0, 10_000, 1),), (), (), ()], r"evidence\[0\]"),
    ([((0, 3),), (), (), ()], r"evidence\[0\] must hold \(start, end, label\)"),
])
def test_bad_evidence_is_refused_by_name(sentiment, documents, evidence, message):
    from captum_maskopt.text.compare import compare_methods
    from captum_maskopt.text.integration import TextExplainer

    with pytest.raises(ValueError, match=message):
        compare_methods(TextExplainer(*sentiment), [d.text for d in documents],
                        [d.label for d in documents], ["InputXGradient"], evidence=evidence)
