"""Resuming a text comparison from its checkpoint file, on the real classifier, and
summarizing an unfinished one."""

import json

import pytest
import torch

from conftest import load_script

from captum_maskopt.text.checkpoint import method_name


@pytest.fixture
def documents():
    from captum_maskopt.text.data import load_snippets

    snippets = load_snippets("test")[:3]
    return [s.text for s in snippets], [s.label for s in snippets]


def test_a_resumed_run_reads_finished_batches_and_gives_the_same_results(
    sentiment, documents, tmp_path, monkeypatch
):
    from captum_maskopt.text import compare
    from captum_maskopt.text.integration import TextExplainer

    explainer = TextExplainer(*sentiment)
    texts, labels = documents
    path = tmp_path / "run.jsonl"
    methods = ["InputXGradient", "Lime"]
    first, kept = compare.compare_methods(
        explainer, texts, labels, methods, batch_size=2, keep_attributions=3, checkpoint=path
    )
    # One line per (method, batch).
    assert len(path.read_text().splitlines()) == 4
    summary = load_script("summarize_checkpoint").summarize(path)["methods"]
    for name in methods:
        filed = method_name(name, None)  # the name and a tag of its settings
        assert summary[filed]["documents"] == 3
        for metric, value in first[name].items():
            assert summary[filed][metric] == pytest.approx(value)

    def no_more_work(*args, **kwargs):
        raise AssertionError("a finished batch was run again")

    monkeypatch.setattr(compare, "_explain_batch", no_more_work)
    again, kept_again = compare.compare_methods(
        explainer, texts, labels, methods, batch_size=2, keep_attributions=3, checkpoint=path
    )
    assert again == first
    for before, after in zip(kept, kept_again):
        for name in methods:
            assert after[name].words == before[name].words
            assert torch.allclose(after[name].scores, before[name].scores.float())


def test_a_batch_filed_before_a_metric_was_added_is_rescored_without_rerunning(
    sentiment, documents, tmp_path, monkeypatch
):
    from captum_maskopt.text import compare
    from captum_maskopt.text.integration import TextExplainer

    explainer = TextExplainer(*sentiment)
    texts, labels = documents
    path = tmp_path / "run.jsonl"
    first, _ = compare.compare_methods(explainer, texts, labels, ["InputXGradient"], batch_size=2, checkpoint=path)
    # The file as an earlier version wrote it: without the protocol metrics.
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for line in lines:
        for metric in ("protocol_comprehensiveness", "protocol_sufficiency"):
            del line["result"]["totals"][metric]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    summary = load_script("summarize_checkpoint").summarize(path)["methods"]
    assert "protocol_sufficiency" not in summary[method_name("InputXGradient", None)]

    def no_more_work(*args, **kwargs):
        raise AssertionError("a filed batch was explained again")

    monkeypatch.setattr(compare, "_explain_batch", no_more_work)
    again, _ = compare.compare_methods(explainer, texts, labels, ["InputXGradient"], batch_size=2, checkpoint=path)
    for metric, value in first["InputXGradient"].items():
        assert again["InputXGradient"][metric] == pytest.approx(value), metric


def test_a_batch_gives_the_same_result_whatever_ran_before_it(sentiment, documents):
    from captum_maskopt.text.compare import compare_methods
    from captum_maskopt.text.integration import TextExplainer

    explainer = TextExplainer(*sentiment)
    texts, labels = documents
    # Lime draws random samples: the last batch must not depend on the first one's draws.
    whole, _ = compare_methods(explainer, texts, labels, ["Lime"], batch_size=2)
    state = torch.random.get_rng_state()
    alone, _ = compare_methods(explainer, texts[2:], labels[2:], ["Lime"], batch_size=2)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's state is kept
    first, _ = compare_methods(explainer, texts[:2], labels[:2], ["Lime"], batch_size=2)
    combined = (2 * first["Lime"]["aopc_comprehensiveness"] + alone["Lime"]["aopc_comprehensiveness"]) / 3
    assert combined == pytest.approx(whole["Lime"]["aopc_comprehensiveness"], abs=1e-9)


def test_a_line_cut_short_or_from_another_model_is_ignored(sentiment, documents, tmp_path):
    from captum_maskopt.text.compare import compare_methods
    from captum_maskopt.text.integration import TextExplainer

    explainer = TextExplainer(*sentiment)
    texts, labels = documents
    path = tmp_path / "run.jsonl"
    compare_methods(explainer, texts[:2], labels[:2], ["InputXGradient"], checkpoint=path)
    line = json.loads(path.read_text())
    foreign = dict(line, run="another model")
    foreign["result"] = dict(line["result"], totals=dict.fromkeys(line["result"]["totals"], 99.0))
    path.write_text(json.dumps(foreign) + "\n" + path.read_text()[:40])
    results, _ = compare_methods(explainer, texts[:2], labels[:2], ["InputXGradient"], checkpoint=path)
    assert results["InputXGradient"]["aopc_comprehensiveness"] < 1
    # The cut line and the foreign one stay; the batch was run and appended again.
    assert len(path.read_text().splitlines()) == 3


def test_shortcut_batches_are_checkpointed_and_summarized(shortcut, tmp_path, monkeypatch):
    from captum_maskopt.text import compare
    from captum_maskopt.text.data import load_shortcut_snippets
    from captum_maskopt.text.integration import TextExplainer

    model, tokenizer, token = shortcut
    planted = [e.text for e in load_shortcut_snippets("test") if token in e.text.lower().split()][:3]
    path = tmp_path / "run.jsonl"
    explainer = TextExplainer(model, tokenizer)
    rates = compare.first_rank_rate(explainer, planted, token, ["InputXGradient", "FeatureAblation"],
                                    batch_size=2, checkpoint=path)
    monkeypatch.setattr(compare, "_explain_batch", lambda *a, **k: pytest.fail("ran again"))
    assert compare.first_rank_rate(explainer, planted, token, ["InputXGradient", "FeatureAblation"],
                                   batch_size=2, checkpoint=path) == rates
    summary = load_script("summarize_checkpoint").summarize(path)["shortcut_first_rank"]
    assert {name: row["rate"] for name, row in summary.items()} == {
        method_name(name, None): rate for name, rate in rates.items()}
    assert all(row["examples"] == 3 for row in summary.values())


def test_another_seed_does_not_reuse_the_batches(sentiment, documents, tmp_path):
    from captum_maskopt.text.compare import compare_methods
    from captum_maskopt.text.integration import TextExplainer

    explainer = TextExplainer(*sentiment)
    texts, labels = documents
    path = tmp_path / "run.jsonl"
    compare_methods(explainer, texts[:2], labels[:2], ["InputXGradient"], checkpoint=path, seed=0)
    compare_methods(explainer, texts[:2], labels[:2], ["InputXGradient"], checkpoint=path, seed=0)
    assert len(path.read_text().splitlines()) == 1
    compare_methods(explainer, texts[:2], labels[:2], ["InputXGradient"], checkpoint=path, seed=1)
    assert len(path.read_text().splitlines()) == 2


def test_the_summary_can_keep_only_the_batches_every_method_finished(tmp_path):
    from captum_maskopt.text.compare import METRICS

    def line(method, texts, value):
        words = [{"text": t} for t in texts]
        result = {"method": method, "words": words, "totals": dict.fromkeys(METRICS, value * len(texts))}
        return json.dumps({"run": "r", "batch": f"{method}{texts}", "result": result})

    path = tmp_path / "run.jsonl"
    path.write_text("\n".join([
        line("A", ["a", "b"], 1.0), line("A", ["c"], 4.0), line("B", ["a", "b"], 2.0),
    ]) + "\n")
    summarize = load_script("summarize_checkpoint").summarize
    everything = summarize(path)["methods"]
    assert everything["A"]["documents"] == 3 and everything["A"]["deletion_auc"] == pytest.approx(2.0)
    shared = summarize(path, common=True)["methods"]
    assert shared["A"]["documents"] == 2 and shared["A"]["deletion_auc"] == pytest.approx(1.0)
    assert shared["B"]["documents"] == 2 and shared["B"]["deletion_auc"] == pytest.approx(2.0)


def test_the_time_ratio_compares_two_methods_on_the_batches_both_finished(tmp_path, capsys):
    from captum_maskopt.text.compare import METRICS

    def line(method, texts, seconds):
        totals = dict.fromkeys(METRICS, 0.0)
        totals["seconds_per_example"] = seconds  # the batch's sum over its documents
        result = {"method": method, "words": [{"text": t} for t in texts], "totals": totals}
        return json.dumps({"run": "r", "batch": f"{method}{texts}", "result": result})

    path = tmp_path / "run.jsonl"
    path.write_text("\n".join([
        line("A", ["a", "b"], 8.0), line("A", ["c"], 3.0), line("A", ["d"], 100.0),
        line("B", ["a", "b"], 2.0), line("B", ["c"], 1.0), line("C", ["e"], 1.0),
    ]) + "\n")
    script = load_script("summarize_checkpoint")
    # Batches (a, b) and (c): ratios 4 and 3; (d) has no B and does not count.
    assert script.time_ratio(path, "A", "B") == {"batches": 2, "median": 3.5, "total": 11.0 / 3.0}
    assert script.main([str(path), "--time-ratio", "A", "B"]) == 0
    assert "median 3.50, totals 3.67" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        script.main([str(path), "--time-ratio", "A", "C"])
    assert "--time-ratio: no batch finished by both 'A' and 'C'" in capsys.readouterr().err


def test_the_summary_and_differences_can_keep_one_kind_of_document(tmp_path, capsys):
    from captum_maskopt.text.compare import METRICS

    def line(method, texts, value, paragraph):
        totals = dict.fromkeys(METRICS, value * len(texts))
        if paragraph:
            totals.update(evidence_auprc=0.5 * len(texts), evidence_documents=float(len(texts)))
        result = {"method": method, "words": [{"text": t} for t in texts], "totals": totals}
        return json.dumps({"run": "r", "batch": f"{method}{texts}", "result": result})

    path = tmp_path / "run.jsonl"
    path.write_text("\n".join([
        line("A", ["s"], 1.0, False), line("B", ["s"], 3.0, False),
        line("A", ["p", "q"], 5.0, True), line("B", ["p", "q"], 4.0, True),
    ]) + "\n")
    script = load_script("summarize_checkpoint")
    assert script.summarize(path)["methods"]["A"]["deletion_auc"] == pytest.approx(11.0 / 3.0)
    snippets = script.summarize(path, kind="snippets")["methods"]
    assert snippets["A"]["documents"] == 1 and snippets["A"]["deletion_auc"] == pytest.approx(1.0)
    paragraphs = script.paired_difference(path, "A", "B", kind="paragraphs")
    assert paragraphs["documents"] == 2 and paragraphs["deletion_auc"]["difference"] == pytest.approx(1.0)
    assert script.main([str(path), "--kind", "snippets", "--difference", "A", "B"]) == 0
    out = capsys.readouterr().out
    assert "over 1 shared batches (1 documents)" in out and "-2.0000" in out


def test_differences_can_read_the_other_method_from_another_file(tmp_path, capsys):
    from captum_maskopt.text.compare import METRICS

    def line(method, texts, value):
        result = {"method": method, "words": [{"text": t} for t in texts],
                  "totals": dict.fromkeys(METRICS, value * len(texts))}
        return json.dumps({"run": "r", "batch": f"{method}{texts}", "result": result})

    # An experiment script filed its variant under the method's own name, in a file of
    # its own; only the documents both files hold pair.
    plain, variant = tmp_path / "plain.jsonl", tmp_path / "variant.jsonl"
    plain.write_text("\n".join([line("A @1234abcd", ["a", "b"], 1.0), line("A @1234abcd", ["c"], 4.0),
                                line("B", ["a", "b"], 9.0)]) + "\n")
    variant.write_text("\n".join([line("A @1234abcd", ["a", "b"], 3.0), line("A @1234abcd", ["d"], 0.0)]) + "\n")
    script = load_script("summarize_checkpoint")
    difference = script.paired_difference(variant, "A", "A", against=plain)
    assert difference["documents"] == 2 and difference["deletion_auc"]["difference"] == pytest.approx(2.0)
    assert script.paired_difference(plain, "A", "B")["deletion_auc"]["difference"] == pytest.approx(-8.0)
    assert script.time_ratio(variant, "A", "A", against=plain)["median"] == pytest.approx(3.0)
    assert script.main([str(variant), "--difference", "A", "A", "--against", str(plain)]) == 0
    assert "A minus A (plain.jsonl) over 1 shared batches (2 documents)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        script.main([str(variant), "--difference", "A", "B", "--against", str(variant)])
    assert "variant.jsonl" in capsys.readouterr().err


def test_the_summary_reads_one_run_unless_told_otherwise(tmp_path, capsys):
    from captum_maskopt.text.compare import METRICS

    def line(run, method, value):
        result = {"method": method, "words": [{"text": "a"}], "totals": dict.fromkeys(METRICS, value)}
        return json.dumps({"run": run, "batch": method, "result": result})

    def shortcut_line(run, method, hits):
        return json.dumps({"run": run, "batch": f"shortcut {method}", "result": {"method": method, "hits": hits,
                                                                              "examples": 2}})

    # The same batch filed by an old run (another model, say) and by the latest one,
    # which then went on with the planted shortcut, on the shortcut classifier (a third key).
    path = tmp_path / "run.jsonl"
    path.write_text("\n".join([
        line("old1", "A", 9.0), line("old1", "B", 0.0), shortcut_line("prevshortcut", "A", 0),
        line("new2", "A", 1.0), line("new2", "B", 3.0), shortcut_line("shortcut3", "A", 2),
    ]) + "\n")
    script = load_script("summarize_checkpoint")
    assert script.chosen_runs(path) == ["new2", "shortcut3"]
    assert script.summarize(path)["methods"]["A"] == {"documents": 1, **dict.fromkeys(METRICS, 1.0)}
    assert script.summarize(path)["shortcut_first_rank"] == {"A": {"examples": 2, "rate": 1.0}}
    assert script.summarize(path, run="old")["methods"]["A"]["deletion_auc"] == 9.0
    assert script.summarize(path, run="all")["methods"]["A"]["documents"] == 2
    assert script.paired_difference(path, "A", "B")["deletion_auc"]["difference"] == -2.0
    assert script.paired_difference(path, "A", "B", run="old1")["deletion_auc"]["difference"] == 9.0
    assert script.main([str(path)]) == 0
    assert "run new2, shortcut; left out: the lines of run(s) old1, prevshor" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        script.main([str(path), "--run", "x"])
    assert "--run: run 'x' names 0 of the file's runs (old1, prevshor, new2, shortcut)" in capsys.readouterr().err


def _record_methods_run(monkeypatch) -> list:
    """From now on, the name of each method that explains a batch (rather than read it
    from the checkpoint) is appended to the list returned."""
    from captum_maskopt.text import compare

    ran = []
    explain_batch = compare._explain_batch

    def recording(explainer, name, *args, **kwargs):
        ran.append(name)
        return explain_batch(explainer, name, *args, **kwargs)

    monkeypatch.setattr(compare, "_explain_batch", recording)
    return ran


def test_other_mask_settings_rerun_mask_optimization_and_reuse_the_peers(
    sentiment, documents, tmp_path, monkeypatch
):
    from captum_maskopt.text import checkpoint, compare
    from captum_maskopt.text.integration import TextExplainer

    explainer = TextExplainer(*sentiment)
    texts, labels = documents[0][:2], documents[1][:2]
    path = tmp_path / "run.jsonl"
    methods = ["InputXGradient", "MaskOptimization"]
    compare.compare_methods(explainer, texts, labels, methods, checkpoint=path,
                            mask_settings={"n_steps": 3})
    ran = _record_methods_run(monkeypatch)
    compare.compare_methods(explainer, texts, labels, methods, checkpoint=path,
                            mask_settings={"n_steps": 4})
    assert ran == ["MaskOptimization"]
    compare.compare_methods(explainer, texts, labels, methods, checkpoint=path,
                            mask_settings={"n_steps": 4})
    assert ran == ["MaskOptimization"]
    # The summary keeps the two settings apart.
    summary = load_script("summarize_checkpoint").summarize(path)["methods"]
    assert set(summary) == {
        checkpoint.method_name("InputXGradient", None),
        checkpoint.method_name("MaskOptimization", {"n_steps": 3}),
        checkpoint.method_name("MaskOptimization", {"n_steps": 4}),
    }
    assert all(row["documents"] == 2 for row in summary.values())


def test_new_text_settings_rerun_mask_optimization_and_reuse_the_peers(
    sentiment, documents, tmp_path, monkeypatch
):
    from captum_maskopt import settings
    from captum_maskopt.text import compare, integration

    explainer = integration.TextExplainer(*sentiment)
    texts, labels = documents[0][:2], documents[1][:2]
    path = tmp_path / "run.jsonl"
    methods = ["InputXGradient", "MaskOptimization"]
    old_settings = dict(integration.TEXT_SETTINGS)
    compare.compare_methods(explainer, texts, labels, methods, checkpoint=path,
                            mask_settings={"n_steps": 3})
    ran = _record_methods_run(monkeypatch)
    monkeypatch.setattr(integration, "TEXT_SETTINGS", {**old_settings, "target_kept_fraction": 0.2})
    compare.compare_methods(explainer, texts, labels, methods, checkpoint=path,
                            mask_settings={"n_steps": 3})
    assert ran == ["MaskOptimization"]
    # Asking for the old settings explicitly finds the batches they made.
    default_budgets = settings.PRESETS["default"].target_kept_fraction
    compare.compare_methods(explainer, texts, labels, methods, checkpoint=path,
                            mask_settings={**old_settings, "target_kept_fraction": default_budgets, "n_steps": 3})
    assert ran == ["MaskOptimization"]


def test_a_new_default_reruns_this_packages_rows_and_reuses_the_peers(
    sentiment, documents, tmp_path, monkeypatch
):
    from captum_maskopt import settings
    from captum_maskopt.text import checkpoint, compare, integration

    explainer = integration.TextExplainer(*sentiment)
    texts, labels = documents[0][:2], documents[1][:2]
    path = tmp_path / "run.jsonl"
    methods = ["InputXGradient", "MaskOptimization"]
    compare.compare_methods(explainer, texts, labels, methods, checkpoint=path, mask_settings={"n_steps": 3})
    old_name = checkpoint.method_name("MaskOptimization", {"n_steps": 3})
    ran = _record_methods_run(monkeypatch)
    # A default that changes (here what an "auto" choice means) files anew only the rows
    # that depend on it.
    monkeypatch.setattr(checkpoint, "DEFAULTS_REVISION", settings.DEFAULTS_REVISION + 1)
    compare.compare_methods(explainer, texts, labels, methods, checkpoint=path, mask_settings={"n_steps": 3})
    assert ran == ["MaskOptimization"]
    new_name = checkpoint.method_name("MaskOptimization", {"n_steps": 3})
    assert new_name != old_name
    summary = load_script("summarize_checkpoint").summarize(path)["methods"]
    assert set(summary) == {checkpoint.method_name("InputXGradient", None), old_name, new_name}


def test_this_packages_rows_are_named_by_the_settings_given_and_the_defaults(monkeypatch):
    from captum_maskopt import settings
    from captum_maskopt.text import checkpoint, integration

    monkeypatch.setattr(integration, "TEXT_SETTINGS", {})
    tag = checkpoint.defaults_tag()
    assert len(tag) == 8
    assert checkpoint.method_name("MaskOptimization", None) == f"MaskOptimization @{tag}"
    # Captum's methods: their name and a tag of their keywords; mask settings don't count.
    assert checkpoint.method_name("Lime", {"n_steps": 9}) == f"Lime @{checkpoint.peer_tag('Lime')}"
    # A default given explicitly (a list from JSON for a tuple too) is the same run as
    # leaving it out.
    default_budgets = list(settings.PRESETS["default"].target_kept_fraction)
    assert checkpoint.method_name(
        "MaskOptimization", {"comprehensiveness": "hinge", "target_kept_fraction": default_budgets}
    ) == f"MaskOptimization @{tag}"
    assert checkpoint.method_name("MaskOptimization", {"comprehensiveness": "log"}) == (
        f'MaskOptimization {{"comprehensiveness": "log"}} @{tag}'
    )
    # Text-only settings are part of the name.
    monkeypatch.setattr(integration, "TEXT_SETTINGS", {"path_average": False})
    assert checkpoint.method_name("MaskOptimization", {"n_steps": 9}) == (
        f'MaskOptimization {{"n_steps": 9, "path_average": false}} @{tag}'
    )
    # The token-level row: the settings given over attribute()'s defaults.
    assert checkpoint.method_name("LayerMaskOptimization", {}) == f"LayerMaskOptimization @{tag}"
    assert checkpoint.method_name("MaskOptimization (paper)", {"n_steps": 9}) == (
        f"MaskOptimization (paper) @{checkpoint.defaults_tag('paper')}"
    )
    # Another default gives another tag.
    changed = dict(settings.PRESETS, default=settings.MaskOptimizationSettings(n_steps=7))
    monkeypatch.setattr(checkpoint, "PRESETS", changed)
    assert checkpoint.defaults_tag() != tag


def test_a_row_may_be_named_without_its_defaults_tag():
    from captum_maskopt.text.checkpoint import filed_method

    filed = ["Lime", "MaskOptimization @00000001", "MaskOptimization {\"n_steps\": 5} @00000001"]
    assert filed_method("Lime", filed) == "Lime"
    assert filed_method("MaskOptimization", filed) == "MaskOptimization @00000001"
    assert filed_method('MaskOptimization {"n_steps": 5}', filed) == filed[2]
    with pytest.raises(ValueError, match="no method 'IG' is filed"):
        filed_method("IG", filed)
    with pytest.raises(ValueError, match="names 2 filed methods"):
        filed_method("MaskOptimization", filed + ["MaskOptimization @00000002"])


def test_the_difference_of_two_methods_comes_with_a_bootstrap_interval(tmp_path, capsys):
    from captum_maskopt.text.compare import METRICS

    def line(method, texts, comprehensiveness, sufficiency):
        totals = dict.fromkeys(METRICS, 0.0)
        # The file holds each batch's sums over its documents.
        totals["aopc_comprehensiveness"] = comprehensiveness
        totals["aopc_sufficiency"] = sufficiency
        result = {"method": method, "words": [{"text": t} for t in texts], "totals": totals}
        return json.dumps({"run": "r", "batch": f"{method}{texts}", "result": result})

    path = tmp_path / "run.jsonl"
    path.write_text("\n".join([
        line("A", ["a", "b"], 2.0, 0.4), line("A", ["c"], 1.0, 0.5), line("A", ["d"], 9.0, 9.0),
        line("B", ["a", "b"], 1.0, 0.2), line("B", ["c"], 0.5, 0.1),
    ]) + "\n")
    script = load_script("summarize_checkpoint")
    difference = script.paired_difference(path, "A", "B")
    assert (difference["batches"], difference["documents"]) == (2, 3)  # (d) has no B
    # Comprehensiveness: every batch is 0.5 per document apart, so every resample is.
    assert difference["aopc_comprehensiveness"] == pytest.approx(
        {"difference": 0.5, "low": 0.5, "high": 0.5})
    # Sufficiency: (0.2 + 0.4) / 3 overall; batches 0.1 and 0.4 per document apart.
    row = difference["aopc_sufficiency"]
    assert row["difference"] == pytest.approx(0.2)
    assert row["low"] == pytest.approx(0.1) and row["high"] == pytest.approx(0.4)
    assert script.main([str(path), "--difference", "A", "B"]) == 0
    assert "aopc_comprehensiveness   +0.5000  [+0.5000, +0.5000]" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        script.main([str(path), "--difference", "A", "C"])
    assert "--difference: no method 'C' is filed; the file has 'A', 'B'" in capsys.readouterr().err
    # Filed, but never on the same batches.
    path.write_text(line("A", ["a"], 1.0, 0.1) + "\n" + line("C", ["b"], 1.0, 0.1) + "\n")
    with pytest.raises(SystemExit):
        script.main([str(path), "--difference", "A", "C"])
    assert "--difference: no batch finished by both 'A' and 'C'" in capsys.readouterr().err


def test_every_method_explains_a_batch_before_the_next_batch_starts(
    sentiment, documents, tmp_path, monkeypatch
):
    from captum_maskopt.text import compare
    from captum_maskopt.text.integration import TextExplainer

    explainer = TextExplainer(*sentiment)
    texts, labels = documents
    ran = _record_methods_run(monkeypatch)
    compare.compare_methods(explainer, texts, labels, ["InputXGradient", "IntegratedGradients"],
                            batch_size=2, checkpoint=tmp_path / "run.jsonl")
    # A run stopped after any batch has both methods on the batches it finished.
    assert ran == ["InputXGradient", "IntegratedGradients", "InputXGradient", "IntegratedGradients"]


def _streams(path):
    """How many whole compressed streams the file holds, and whether bytes are left over."""
    import lzma
    import zlib

    data, count = path.read_bytes(), 0
    while data:
        decompressor = (lzma.LZMADecompressor() if path.suffix == ".xz"
                        else zlib.decompressobj(wbits=16 + zlib.MAX_WBITS))
        try:
            decompressor.decompress(data)
        except (lzma.LZMAError, zlib.error):
            return count, True
        if not decompressor.eof:
            return count, True
        count, data = count + 1, decompressor.unused_data
    return count, False


@pytest.mark.parametrize("suffix", [".xz", ".gz"])
def test_a_compressed_checkpoint_appends_a_stream_per_batch_and_compacts_on_opening(tmp_path, suffix):
    from captum_maskopt.text.checkpoint import Checkpoint, read_checkpoint

    model = torch.nn.Linear(2, 2)
    path, plain = tmp_path / f"run.jsonl{suffix}", tmp_path / "run.jsonl"
    for target in (path, plain):
        log = Checkpoint(target, model, 0)
        for number in range(3):
            log.add(f"batch {number}", {"totals": {"aopc_comprehensiveness": number / 3}, "words": ["x" * 50] * 20})
    assert _streams(path) == (3, False)
    assert list(read_checkpoint(path)) == list(read_checkpoint(plain))
    # Opening again rewrites the file as one stream, smaller than the three, same lines.
    size = path.stat().st_size
    resumed = Checkpoint(path, model, 0)
    assert _streams(path) == (1, False) and path.stat().st_size < size
    assert list(read_checkpoint(path)) == list(read_checkpoint(plain))
    assert sorted(resumed.done) == ["batch 0", "batch 1", "batch 2"]

    # A run killed while writing a batch leaves a stream cut short: that batch is lost,
    # the others are kept, and the next batch is appended readably after them.
    resumed.add("batch 3", {"totals": {}, "words": []})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 5])
    assert [entry["batch"] for entry in read_checkpoint(path)] == ["batch 0", "batch 1", "batch 2"]
    again = Checkpoint(path, model, 0)
    assert sorted(again.done) == ["batch 0", "batch 1", "batch 2"]
    again.add("batch 3", {"totals": {}, "words": []})
    assert [entry["batch"] for entry in read_checkpoint(path)] == ["batch 0", "batch 1", "batch 2", "batch 3"]
    again.close()
    assert _streams(path) == (1, False)


def test_a_compressed_checkpoint_that_is_not_one_is_refused_and_kept(tmp_path):
    from captum_maskopt.text.checkpoint import Checkpoint

    path = tmp_path / "run.jsonl.xz"
    path.write_text('{"run": "r", "batch": "b", "result": {}}\n')
    with pytest.raises(ValueError, match=r"run\.jsonl\.xz.*no complete \.xz stream"):
        Checkpoint(path, torch.nn.Linear(2, 2), 0)
    assert path.read_text() == '{"run": "r", "batch": "b", "result": {}}\n'


def test_a_comparison_leaves_its_compressed_checkpoint_as_one_stream(sentiment, documents, tmp_path):
    from captum_maskopt.text.compare import compare_methods
    from captum_maskopt.text.integration import TextExplainer

    explainer = TextExplainer(*sentiment)
    texts, labels = documents
    path = tmp_path / "run.jsonl.xz"
    results, _ = compare_methods(explainer, texts, labels, ["InputXGradient"], batch_size=1, checkpoint=path)
    assert _streams(path) == (1, False)
    summary = load_script("summarize_checkpoint").summarize(path)["methods"][method_name("InputXGradient", None)]
    assert summary["documents"] == 3
    assert summary["aopc_comprehensiveness"] == pytest.approx(results["InputXGradient"]["aopc_comprehensiveness"])


def test_a_metric_measured_on_some_batches_is_paired_over_those():
    from captum_maskopt.text.compare import METRICS, paired_difference

    def result(method, text, value, evidence=None):
        totals = dict.fromkeys(METRICS, value)
        if evidence is not None:
            totals.update(evidence_auprc=evidence, evidence_documents=1.0)
        return {"method": method, "words": [{"text": text}], "totals": totals}

    results = [result("A", "snippet", 1.0), result("B", "snippet", 0.0),
               result("A", "other snippet", 3.0), result("B", "other snippet", 0.0),
               result("A", "paragraph", 2.0, evidence=0.75), result("B", "paragraph", 0.0, evidence=0.5)]
    difference = paired_difference(results, "A", "B")
    assert (difference["batches"], difference["documents"]) == (3, 3)
    assert difference["aopc_comprehensiveness"]["difference"] == pytest.approx(2.0)
    assert "batches" not in difference["aopc_comprehensiveness"]
    assert difference["evidence_auprc"] == {"difference": 0.25, "low": 0.25, "high": 0.25, "batches": 1}


def test_the_projects_classifier_is_known_by_its_recipe_until_its_weights_change(sentiment):
    import copy

    from captum_maskopt.text.checkpoint import model_fingerprint
    from captum_maskopt.text.classifier import weights_digest

    model, _ = sentiment
    retrained = copy.deepcopy(model)
    with torch.no_grad():
        # What the same recipe gives on another CPU: the last bits of the head differ.
        retrained.head.weight.copy_(torch.nextafter(retrained.head.weight, torch.full_like(retrained.head.weight, 9.0)))
    retrained.trained_weights = weights_digest(retrained)
    assert weights_digest(retrained) != weights_digest(model)
    assert model_fingerprint(retrained) == model_fingerprint(model) != weights_digest(model)

    with torch.no_grad():
        retrained.head.bias.add_(0.5)  # the caller changed the trained model
    assert model_fingerprint(retrained) == weights_digest(retrained) != model_fingerprint(model)
    foreign = copy.deepcopy(model)
    foreign.recipe = None
    assert model_fingerprint(foreign) == weights_digest(model)


def test_a_peers_settings_change_its_own_rows_name_and_not_the_run(monkeypatch):
    from torch import nn

    from captum_maskopt import settings
    from captum_maskopt.text import checkpoint

    model = nn.Linear(2, 2)
    key = checkpoint.run_key(model, seed=0)
    assert checkpoint.run_key(model, seed=1) != key
    monkeypatch.setattr(checkpoint, "DEFAULTS_REVISION", settings.DEFAULTS_REVISION + 1)
    assert checkpoint.run_key(model, seed=0) == key
    lime, shapley = (checkpoint.method_name(name, None) for name in ("Lime", "ShapleyValueSampling"))
    monkeypatch.setitem(checkpoint.PEER_SETTINGS, "Lime", {"n_samples": 7})
    assert checkpoint.run_key(model, seed=0) == key
    assert checkpoint.method_name("Lime", None) != lime
    assert checkpoint.method_name("Lime", None).startswith("Lime @")
    assert checkpoint.method_name("ShapleyValueSampling", None) == shapley


def test_a_peer_whose_settings_changed_runs_again_and_the_others_are_read(
    sentiment, documents, tmp_path, monkeypatch
):
    from captum_maskopt.text import TextExplainer, checkpoint, compare

    ran = _record_methods_run(monkeypatch)
    explainer = TextExplainer(*sentiment)
    texts, labels = documents[0][:2], documents[1][:2]
    path = tmp_path / "run.jsonl"
    methods = ["InputXGradient", "FeatureAblation"]
    compare.compare_methods(explainer, texts, labels, methods, batch_size=2, checkpoint=path)
    assert sorted(ran) == sorted(methods)
    ran.clear()
    monkeypatch.setitem(checkpoint.PEER_SETTINGS, "FeatureAblation", {"perturbations_per_eval": 4})
    compare.compare_methods(explainer, texts, labels, methods, batch_size=2, checkpoint=path)
    assert ran == ["FeatureAblation"]
    assert len({entry["run"] for entry in checkpoint.read_checkpoint(path)}) == 1


def test_the_steps_curve_pairs_each_step_count_with_integrated_gradients(sentiment, tmp_path, monkeypatch):
    ran = _record_methods_run(monkeypatch)
    script = load_script("steps_curve")
    out = tmp_path / "steps.json"
    arguments = ["--steps", "2,3", "--snippets", "4", "--split", "validation", "--batch-size", "2",
                 "--checkpoint", str(tmp_path / "run.jsonl"), "--json", str(out)]
    assert script.main(arguments) == 0
    # The peers explain each batch once, the mask each batch once per step count.
    assert sorted(ran) == sorted(["MaskOptimization", "IntegratedGradients", "ShapleyValueSampling"] * 2
                                 + ["MaskOptimization"] * 2)
    results = json.loads(out.read_text())
    rows = ["MaskOptimization (n_steps=2)", "MaskOptimization (n_steps=3)"]
    assert list(results["methods"]) == rows + ["IntegratedGradients", "ShapleyValueSampling"]
    for row in rows:
        paired = results["paired_differences"][row]["IntegratedGradients"]
        assert paired["batches"] == 2
        gap = results["methods"][row]["aopc_sufficiency"] - results["methods"]["IntegratedGradients"]["aopc_sufficiency"]
        assert paired["aopc_sufficiency"]["difference"] == pytest.approx(gap)
        assert results["seconds_over_integrated_gradients"][row] > 0
    # Run again: everything is read from the checkpoint.
    del ran[:]
    assert script.main(arguments) == 0
    assert ran == [] and json.loads(out.read_text())["methods"] == results["methods"]


def test_a_checkpoint_filed_before_the_peer_tags_is_read_again_once_migrated(
    sentiment, shortcut, documents, tmp_path, monkeypatch
):
    from captum_maskopt.text import TextExplainer, checkpoint, compare

    migrate = load_script("migrate_checkpoint")
    # Two peers whose settings have not changed since: their refiled rows are today's.
    methods = ["InputXGradient", "MASE"]
    assert all(checkpoint.PEER_SETTINGS[name] == migrate.FILED_WITH[name] for name in methods)
    texts, labels = documents[0][:3], documents[1][:3]
    token, planted = migrate.planted_batches(0, 2)
    path = tmp_path / "old.jsonl.xz"
    explainer, planted_explainer = TextExplainer(*sentiment), TextExplainer(*shortcut[:2])

    def run() -> tuple:
        results, _ = compare.compare_methods(explainer, texts, labels, methods, batch_size=2, checkpoint=path)
        rates = compare.first_rank_rate(planted_explainer, planted[1], token, methods, batch_size=2,
                                        checkpoint=path)
        return results, rates

    # Filed as before: the peers' settings in the run key, their bare names in the batch keys.
    with monkeypatch.context() as old:
        old.setattr(checkpoint, "run_key", lambda model, seed: migrate.old_run_key(
            checkpoint.model_fingerprint(model), seed))
        named = compare.method_name
        old.setattr(compare, "method_name", lambda name, settings: name if name in methods else named(name, settings))
        before = run()
    assert {entry["result"]["method"] for entry in checkpoint.read_checkpoint(path)} == set(methods)
    ran = _record_methods_run(monkeypatch)
    migrate.main([str(path)])
    assert run() == before
    assert ran == []
    filed = {entry["result"]["method"] for entry in checkpoint.read_checkpoint(path)}
    assert filed == {checkpoint.method_name(name, None) for name in methods}
    # Run twice, the migration leaves the file as it is.
    content = list(checkpoint.read_checkpoint(path))
    migrate.main([str(path)])
    assert list(checkpoint.read_checkpoint(path)) == content


def test_archiving_moves_the_rows_of_superseded_settings_and_keeps_what_the_comparison_reads(
    sentiment, documents, tmp_path, monkeypatch
):
    from captum_maskopt.text import TextExplainer, checkpoint, compare

    archive = load_script("archive_checkpoint")
    explainer = TextExplainer(*sentiment)
    texts, labels = documents[0][:2], documents[1][:2]
    path, record = tmp_path / "run.jsonl.xz", tmp_path / "earlier.jsonl.xz"
    methods = ["InputXGradient", "FeatureAblation"]
    compare.compare_methods(explainer, texts, labels, methods, batch_size=2, checkpoint=path)
    earlier = checkpoint.method_name("FeatureAblation", None)
    monkeypatch.setitem(checkpoint.PEER_SETTINGS, "FeatureAblation", {"perturbations_per_eval": 4})
    results, _ = compare.compare_methods(explainer, texts, labels, methods, batch_size=2, checkpoint=path)
    lines = list(checkpoint.read_checkpoint(path))
    archive.main([str(path), "--to", str(record)])
    kept, moved = list(checkpoint.read_checkpoint(path)), list(checkpoint.read_checkpoint(record))
    assert [line["result"]["method"] for line in moved] == [earlier]
    assert kept == [line for line in lines if line not in moved]
    # The comparison reads every row it needs from what was kept.
    ran = _record_methods_run(monkeypatch)
    assert compare.compare_methods(explainer, texts, labels, methods, batch_size=2, checkpoint=path)[0] == results
    assert ran == []
    # Nothing more to move, and the record keeps what it had.
    archive.main([str(path), "--to", str(record)])
    assert list(checkpoint.read_checkpoint(path)) == kept
    assert list(checkpoint.read_checkpoint(record)) == moved
    with pytest.raises(SystemExit):
        archive.main([str(path), "--to", str(path)])


def test_a_filed_name_is_current_when_its_tag_is_the_one_its_method_gets_now():
    from captum_maskopt.text import checkpoint

    archive = load_script("archive_checkpoint")
    current = checkpoint.defaults_tag()
    assert archive.is_current(f"MaskOptimization @{current}")
    assert archive.is_current(f'MaskOptimization {{"n_steps": 25}} @{current}')
    assert archive.is_current(f"LayerMaskOptimization @{current}")
    assert archive.is_current(checkpoint.method_name("MaskOptimization (paper)", None))
    assert not archive.is_current(f"MaskOptimization (paper) @{current}")
    assert archive.is_current(checkpoint.method_name("Lime", None))
    assert not archive.is_current("Lime @00000000")
    assert not archive.is_current('MaskOptimization {"n_steps": 25} @00000000')
    with pytest.raises(ValueError, match="TAG"):
        archive.is_current("Lime")
    assert checkpoint.filed_parts('MaskOptimization {"n_steps": 25} @1a2b3c4d') == (
        "MaskOptimization", {"n_steps": 25}, "1a2b3c4d")
    assert checkpoint.filed_parts("MaskOptimization (paper) @1a2b3c4d") == ("MaskOptimization (paper)", {}, "1a2b3c4d")


def test_rows_of_earlier_defaults_are_read_again_once_refiled_under_todays_names(
    sentiment, documents, tmp_path, monkeypatch
):
    from captum_maskopt.settings import PRESETS
    from captum_maskopt.text import TextExplainer, checkpoint, compare

    refile = load_script("refile_earlier_defaults")
    explainer = TextExplainer(*sentiment)
    texts, labels = documents[0][:2], documents[1][:2]
    path = tmp_path / "run.jsonl.xz"
    given = {"n_steps": 3}
    today = checkpoint.defaults_tag()
    earlier = {"flip_fraction": 0.1}
    with monkeypatch.context() as then:
        # The defaults of an earlier version: one field otherwise.
        then.setattr(checkpoint, "PRESETS", {**PRESETS, "default": PRESETS["default"].with_overrides(**earlier)})
        tag = checkpoint.defaults_tag()
        before, _ = compare.compare_methods(explainer, texts, labels, ["MaskOptimization", "InputXGradient"],
                                            batch_size=2, checkpoint=path, mask_settings={**earlier, **given})
    assert tag != today
    ran = _record_methods_run(monkeypatch)
    methods = ["MaskOptimization", "InputXGradient"]
    compare.compare_methods(explainer, texts, labels, methods, batch_size=2, checkpoint=tmp_path / "probe.jsonl",
                            mask_settings={**earlier, **given})
    assert sorted(ran) == sorted(methods)  # under today's names, not filed yet
    ran.clear()
    with pytest.raises(SystemExit):  # the earlier defaults given do not make the tag
        refile.main([str(path), "--tag", tag, "--earlier", '{"flip_fraction": 0.2}'])
    refile.main([str(path), "--tag", tag, "--earlier", json.dumps(earlier)])
    after, _ = compare.compare_methods(explainer, texts, labels, methods, batch_size=2, checkpoint=path,
                                       mask_settings={**earlier, **given})
    assert ran == []
    assert after == before
    names = [line["result"]["method"] for line in checkpoint.read_checkpoint(path)]
    assert f'MaskOptimization {json.dumps({**earlier, **given}, sort_keys=True)} @{today}' in names
    # Run again: nothing more to file.
    lines = list(checkpoint.read_checkpoint(path))
    refile.main([str(path), "--tag", tag, "--earlier", json.dumps(earlier)])
    assert list(checkpoint.read_checkpoint(path)) == lines
