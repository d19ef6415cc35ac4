"""The text integration and the comparison command on the real MiniLM classifiers
(loaded from the cache, trained into it once when missing)."""

import json

import pytest
import torch

from captum_maskopt.cli import main


def test_rationales_on_real_reviews(sentiment):
    from captum_maskopt.text import TextExplainer
    from captum_maskopt.text.data import load_snippets

    model, tokenizer = sentiment
    texts = [e.text for e in load_snippets("test")[:3]]
    # A budget with room for redundant evidence: at the 5 % of TEXT_SETTINGS, a snippet
    # with many positive words can keep its prediction in both views.
    results = TextExplainer(model, tokenizer).explain(texts, n_steps=30, target_kept_fraction=0.3)
    for text, result in zip(texts, results):
        assert [text[s:e] for s, e in result.spans] == result.words
        assert ((result.scores >= 0) & (result.scores <= 1)).all()
        record = result.extra["record"]
        # The kept words alone keep the prediction better than the rest does.
        assert record["keep_probability"] > record["remove_probability"]
        assert 0 < record["kept_fraction"] < 1


def test_planted_shortcut_word_ranks_first(shortcut):
    from captum_maskopt.text import TextExplainer
    from captum_maskopt.text.data import load_shortcut_snippets, load_snippets

    model, tokenizer, token = shortcut
    # Rotten snippets whose label the planted word flipped: the word decides.
    planted = [p.text for p, c in zip(load_shortcut_snippets("test"), load_snippets("test"))
               if p.text != c.text and c.label == 0][:4]
    results = TextExplainer(model, tokenizer).explain(planted)
    assert all(r.target == 1 for r in results)
    token_scores = [float(r.scores[[w.lower() for w in r.words].index(token)]) for r in results]
    # The word is always kept; the smooth mask keeps its neighbours too, so it is not
    # always the single maximum (the comparison command reports the rate).
    assert min(token_scores) > 0.5
    firsts = sum(r.words[int(r.scores.argmax())].lower() == token for r in results)
    assert firsts >= 2


def test_document_longer_than_the_window(sentiment):
    from captum_maskopt.text import TextExplainer
    from captum_maskopt.text.data import load_paragraphs

    model, tokenizer = sentiment
    # Explained in a short window rather than the model's 512 tokens (which the long
    # text only encodes into): the windowing is the same, and the final ranking's
    # readings of a document over 512 tokens take about ten minutes on two cores
    # (several hundred words, each read at a few rationales, in every window).
    paragraphs = load_paragraphs("test")
    long_text = " ".join(p.text for p in paragraphs[:3])
    assert TextExplainer(model, tokenizer).encode([long_text], windows=True).input_ids.shape[1] >= 2
    text = " ".join(paragraphs[0].text.split()[:60])
    explainer = TextExplainer(model, tokenizer, max_length=32)
    encoding = explainer.encode([text], windows=True)
    assert encoding.input_ids.shape[1] >= 3  # three windows of 32 tokens
    result = explainer.explain([text], n_steps=4)[0]
    assert len(result.words) == len(encoding.word_spans[0])
    assert result.spans[-1][1] == len(text.rstrip())
    assert torch.isfinite(result.scores).all()


def test_compare_text_end_to_end(tmp_path, capsys):
    json_path, html_path = tmp_path / "r.json", tmp_path / "r.html"
    code = main([
        "compare", "text", "--snippets", "2", "--paragraphs", "1", "--shortcut", "2",
        "--methods", "MaskOptimization,IntegratedGradients,FeatureAblation",
        "--json", str(json_path), "--html", str(html_path), "--quiet",
    ])
    assert code == 0
    out = capsys.readouterr().out
    table = {line.split()[0]: line.split()[1:] for line in out.splitlines()
             if line.split() and line.split()[0] in ("MaskOptimization", "IntegratedGradients")}
    assert set(table) == {"MaskOptimization", "IntegratedGradients"}
    written = json.loads(json_path.read_text())
    assert set(written["methods"]) == {"MaskOptimization", "IntegratedGradients", "FeatureAblation"}
    for row in written["methods"].values():
        assert set(row) >= {"aopc_comprehensiveness", "aopc_sufficiency", "deletion_auc",
                            "delta_accuracy", "seconds_per_example"}
        assert row["seconds_per_example"] > 0
    assert written["config"]["snippets"] == 2 and written["config"]["paragraphs"] == 1
    assert set(written["shortcut_first_rank_rate"]) == set(written["methods"])
    page = html_path.read_text()
    assert page.count("<th>MaskOptimization</th>") >= 1 and "Legend" in page


def test_compare_text_rejects_unknown_methods():
    with pytest.raises(SystemExit, match="unknown"):
        main(["compare", "text", "--methods", "Nope", "--quiet"])


def test_compare_text_mask_settings_override_text_settings(tmp_path, monkeypatch):
    from captum_maskopt.text import TEXT_SETTINGS, integration

    expected = {**TEXT_SETTINGS, "target_kept_fraction": 0.2, "comprehensiveness": "hinge"}
    seen = []

    class Recording(integration.LayerMaskOptimization):
        """Records the settings the text comparison's MaskOptimization runs with."""

        def attribute(self, *args, **kwargs):
            seen.append({name: kwargs[name] for name in expected})
            return super().attribute(*args, **{**kwargs, "n_steps": 2})

    monkeypatch.setattr(integration, "LayerMaskOptimization", Recording)
    json_path = tmp_path / "r.json"
    assert main([
        "compare", "text", "--snippets", "1", "--paragraphs", "0", "--shortcut", "0",
        "--methods", "MaskOptimization", "--mask-setting", "target_kept_fraction=0.2",
        "--mask-setting", "comprehensiveness=hinge", "--json", str(json_path), "--quiet",
    ]) == 0
    assert seen == [expected]
    assert json.loads(json_path.read_text())["config"]["mask_optimization_settings"] == expected


@pytest.mark.parametrize("pair", ["target_kept_fraction", "target=1", "no_such_setting=1"])
def test_compare_text_rejects_bad_mask_settings(pair):
    with pytest.raises(SystemExit, match="--mask-setting: expected NAME=VALUE"):
        main(["compare", "text", "--mask-setting", pair, "--quiet"])


def test_compare_text_runs_on_the_validation_split_for_tuning(tmp_path):
    """Settings are tuned on the validation split, apart from the reported test split."""
    from captum_maskopt.text import load_snippets

    json_path = tmp_path / "dev.json"
    assert main([
        "compare", "text", "--split", "validation", "--snippets", "1", "--paragraphs", "0",
        "--shortcut", "0", "--methods", "InputXGradient", "--json", str(json_path), "--quiet",
    ]) == 0
    config = json.loads(json_path.read_text())["config"]
    assert config["split"] == "validation"
    assert load_snippets("validation")[0].text != load_snippets("test")[0].text
