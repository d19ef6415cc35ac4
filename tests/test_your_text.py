"""The user's own text classifier and data: file formats, explain_texts /
explain_dataset, the explain and compare commands, resume, and bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from captum_maskopt.cli import main
from captum_maskopt.output import ExplanationFile, read_rows, run_fingerprint, write_atomically
from captum_maskopt.tables import InputError, MissingColumnError, column, read_table

ROWS = [
    {"text": "a good, warm film", "label": "positive"},
    {"text": "", "label": "negative"},
    {"text": "dull and far too long", "label": "negative"},
    {"text": "lovely", "label": "positive"},
]
FAST = ["--mask-setting", "n_steps=4", "--quiet"]


def _write_table(path: Path, rows):
    """``rows`` in the format that ``path``'s suffix names (a folder: save_to_disk)."""
    suffix = path.suffix
    if suffix in (".csv", ".tsv"):
        import csv

        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="," if suffix == ".csv" else "\t")
            writer.writeheader()
            writer.writerows(rows)
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    elif suffix == ".parquet":
        import pyarrow
        import pyarrow.parquet

        pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), path)
    elif suffix == ".txt":
        path.write_text("".join(row["text"] + "\n" for row in rows), encoding="utf-8")
    else:
        import datasets

        datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


@pytest.mark.parametrize("name", ["in.csv", "in.tsv", "in.jsonl", "in.parquet", "in.txt", "saved"])
def test_every_format_reads_the_same_texts(tmp_path, name):
    rows = read_table(_write_table(tmp_path / name, ROWS))
    assert column(rows, "text") == [row["text"] for row in ROWS]
    if name != "in.txt":
        assert column(rows, "label") == [row["label"] for row in ROWS]


def test_unreadable_input_says_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_table(tmp_path / "missing.csv")
    (tmp_path / "in.xlsx").write_text("x")
    with pytest.raises(InputError, match=r"\.csv, \.tsv, \.jsonl, \.parquet, \.txt"):
        read_table(tmp_path / "in.xlsx")
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\nnot json\n')
    with pytest.raises(InputError, match="line 2"):
        read_table(tmp_path / "bad.jsonl")
    with pytest.raises(MissingColumnError, match="the columns are 'text', 'label'") as raised:
        column(ROWS, "review", "--text-column")
    assert "--text-column" in str(raised.value)


def test_explanation_file_resumes_drops_a_torn_row_and_restarts_for_another_run(tmp_path):
    path = tmp_path / "out.jsonl"
    first = ExplanationFile(path, "run-a")
    assert first.status == "new file"
    first.write([{"id": 0, "x": 1}, {"id": 1, "x": 2}])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"id": 2, "x"')  # killed mid-write
    again = ExplanationFile(path, "run-a")
    assert again.done == {0, 1} and "resuming" in again.status
    assert [row["id"] for row in read_rows(path)] == [0, 1]
    other = ExplanationFile(path, "run-b")
    assert other.done == set() and "another run" in other.status
    assert read_rows(path) == []
    assert run_fingerprint({"a": 1}, ["x"]) != run_fingerprint({"a": 1}, ["y"])


def test_an_atomic_write_replaces_the_file_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "deep" / "file.bin"
    write_atomically(path, b"first")
    assert path.read_bytes() == b"first"

    def broken_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr("captum_maskopt.output.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, b"second")
    assert path.read_bytes() == b"first"
    assert [p.name for p in path.parent.iterdir()] == ["file.bin"]  # no temporary left


def test_the_run_fingerprint_changes_with_the_defaults_revision(monkeypatch):
    from captum_maskopt import output

    before = run_fingerprint({"a": 1}, ["x"])
    monkeypatch.setattr(output, "DEFAULTS_REVISION", output.DEFAULTS_REVISION + 1)
    assert run_fingerprint({"a": 1}, ["x"]) != before


@pytest.fixture(scope="module")
def explainer(saved_text_classifier):
    from captum_maskopt.text import TextExplainer

    return TextExplainer.from_pretrained(saved_text_classifier)


def test_from_pretrained_reads_the_folder_and_its_label_names(explainer, saved_text_classifier):
    assert explainer.label_names == ["negative", "positive"]
    # The position table (64) bounds the input, not the tokenizer's 512.
    assert explainer.max_length == 64
    assert not explainer.model.training


def test_a_folder_without_classification_head_is_refused(saved_text_classifier, tmp_path):
    from captum_maskopt.text import TextExplainer

    with pytest.raises(InputError, match="no classification head"):
        TextExplainer.from_pretrained(saved_text_classifier.parent / "bare")
    with pytest.raises(FileNotFoundError, match="config.json"):
        TextExplainer.from_pretrained(tmp_path)


def test_from_pipeline_takes_model_tokenizer_and_labels(explainer):
    from transformers import pipeline

    from captum_maskopt.text import TextExplainer

    pipe = pipeline("text-classification", model=explainer.model, tokenizer=explainer.tokenizer, device="cpu")
    wrapped = TextExplainer.from_pipeline(pipe)
    assert wrapped.model is pipe.model and wrapped.label_names == ["negative", "positive"]
    [row] = wrapped.explain(["a fine film"], n_steps=3)
    assert row.words == ["a", "fine", "film"]
    with pytest.raises(TypeError, match="text-classification pipeline"):
        TextExplainer.from_pipeline(object())


def test_explain_texts_rows_schema_order_and_errors(explainer):
    from captum_maskopt.text.dataset import explain_texts

    texts = ["a good film", "", None, "bad " * 80, "fine"]
    batches = list(explain_texts(explainer, texts, batch_size=2, mask_settings={"n_steps": 4}))
    rows = [row for batch in batches for row in batch]
    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert [row["id"] for row in rows] == list(range(len(texts)))
    assert rows[1]["error"].startswith("empty text") and rows[1]["words"] == []
    assert rows[2]["error"].startswith("not a text")
    good = [rows[i] for i in (0, 3, 4)]
    for row, text in zip(good, [texts[0], texts[3], texts[4]]):
        assert row["error"] is None and row["text"] == text
        assert row["method"] == "MaskOptimization" and row["settings"]["n_steps"] == 4
        assert row["predicted_label"] == ["negative", "positive"][row["predicted"]]
        assert row["target"] == row["predicted"] and row["seconds"] > 0
        for word in row["words"]:
            assert text[word["start"]:word["end"]] == word["word"] and 0 <= word["score"] <= 1
        for span in row["rationale"]:
            assert text[span["start"]:span["end"]] == span["text"]
        json.dumps(row, allow_nan=False)
    # 80 words do not fit in one 64-token window: every word is still scored.
    assert len(rows[3]["words"]) == 80


def test_targets_by_index_name_and_per_text(explainer):
    from captum_maskopt.text.dataset import explain_dataset

    texts = ["nice", "awful"]
    by_name = explain_dataset(texts, explainer, target="negative", method="IntegratedGradients")
    assert [row["target"] for row in by_name] == [0, 0]
    assert by_name[0]["settings"]["n_steps"] == 50
    per_text = explain_dataset(texts, explainer, target=["1", 0.0], method="FeatureAblation")
    assert [row["target"] for row in per_text] == [1, 0]
    with pytest.raises(InputError, match=r"one of \['negative', 'positive'\]"):
        explain_dataset(texts, explainer, target="neutral")
    with pytest.raises(InputError, match="out of range"):
        explain_dataset(texts, explainer, target=2)


def test_explain_dataset_maps_a_hugging_face_dataset(explainer):
    import datasets

    from captum_maskopt.text.dataset import explain_dataset

    dataset = datasets.Dataset.from_dict({"review": ["nice one", "", "awful"], "label": [1, 0, 0]})
    explained = explain_dataset(dataset, explainer, text_column="review", target="label",
                                mask_settings={"n_steps": 3}, batch_size=2)
    assert explained["review"] == dataset["review"]
    assert explained["target"] == [1, None, 0]
    assert explained["words"][0] == ["nice", "one"] and len(explained["scores"][0]) == 2
    assert explained["error"][1].startswith("empty text")
    with pytest.raises(InputError, match="the columns are"):
        explain_dataset(dataset, explainer, text_column="text")


@pytest.mark.parametrize("name", ["in.csv", "in.tsv", "in.jsonl", "in.parquet", "in.txt", "saved"])
def test_explain_text_command_on_every_format(tmp_path, saved_text_classifier, name, capsys):
    source = _write_table(tmp_path / name, ROWS)
    out = tmp_path / "out.jsonl"
    assert main(["explain", "text", "--model", str(saved_text_classifier), "--input", str(source),
                 "--output", str(out), "--batch-size", "3", *FAST]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["text"] for row in rows] == [row["text"] for row in ROWS]
    assert [row["error"] is None for row in rows] == [True, False, True, True]
    assert "4 row(s)" in capsys.readouterr().out


def test_explain_text_command_targets_a_column_and_writes_html(tmp_path, saved_text_classifier):
    source = _write_table(tmp_path / "in.csv", ROWS)
    out, page = tmp_path / "out.jsonl", tmp_path / "out.html"
    main(["explain", "text", "--model", str(saved_text_classifier), "--input", str(source),
          "--output", str(out), "--target", "label", "--html", str(page), "--method", "IntegratedGradients",
          "--quiet"])
    rows = read_rows(out)
    assert [row["target_label"] for row in rows] == ["positive", None, "negative", "positive"]
    assert all(row["method"] == "IntegratedGradients" for row in rows)
    html = page.read_text()
    assert "dull" in html and "IntegratedGradients" in html


def test_explain_text_command_resumes_and_restarts_when_a_setting_changes(tmp_path, saved_text_classifier, capsys):
    source = _write_table(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "out.jsonl"
    command = ["explain", "text", "--model", str(saved_text_classifier), "--input", str(source), "--output", str(out)]
    main(command + FAST)
    lines = out.read_text().splitlines()
    # As if the run had stopped after two rows, the second cut off mid-write.
    out.write_text(lines[0] + "\n" + lines[1][:20])
    main(command + FAST)
    assert "resuming" in capsys.readouterr().err
    again = out.read_text().splitlines()
    assert [json.loads(line)["id"] for line in again] == [0, 1, 2, 3]
    assert again[0] == lines[0]
    main(command + ["--mask-setting", "n_steps=5", "--quiet"])
    assert "another run" in capsys.readouterr().err
    assert [row["settings"]["n_steps"] for row in read_rows(out)] == [5] * 4


def test_explain_text_resumes_after_the_process_is_killed(tmp_path, saved_text_classifier):
    texts = [f"review number {i} was rather good" for i in range(40)]
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts) + "\n")
    out = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "captum_maskopt.cli", "explain", "text", "--model", str(saved_text_classifier),
               "--input", str(source), "--output", str(out), "--batch-size", "1",
               "--mask-setting", "n_steps=30", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if out.exists() and len(out.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be interrupted"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(out.read_text().splitlines())
    assert 3 <= done_before < len(texts)
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    assert "resuming" in finished.stderr
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == list(range(len(texts)))


def test_bad_input_to_the_text_commands_is_one_clear_line(tmp_path, saved_text_classifier):
    source = _write_table(tmp_path / "in.csv", ROWS)
    out = str(tmp_path / "out.jsonl")
    base = ["explain", "text", "--model", str(saved_text_classifier), "--input", str(source), "--output", out, "--quiet"]
    cases = {
        "no column 'review'; the columns are 'text', 'label'": base + ["--text-column", "review"],
        "a class name (negative, positive) or a column (text, label)": base + ["--target", "neutral"],
        "no classification head": ["explain", "text", "--model", str(saved_text_classifier.parent / "bare"),
                                   "--input", str(source), "--output", out],
        "no such file": ["explain", "text", "--model", str(saved_text_classifier), "--input",
                         str(tmp_path / "none.csv"), "--output", out],
        "--target: class 5 is out of range for 2 classes": base + ["--target", "5"],
        "n_steps must be an integer >= 1": base + ["--mask-setting", "n_steps=0"],
        "unknown or repeated": base + ["--method", "Nope"],
    }
    for expected, argv in cases.items():
        with pytest.raises(SystemExit) as raised:
            main(argv)
        assert expected in str(raised.value), (expected, raised.value)


def test_missing_optional_part_is_named_with_its_install_command(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def without_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    (tmp_path / "in.parquet").write_bytes(b"PAR1")
    monkeypatch.setattr(builtins, "__import__", without_pyarrow)
    with pytest.raises(SystemExit, match="pip install pyarrow"):
        main(["explain", "text", "--input", str(tmp_path / "in.parquet"), "--output", str(tmp_path / "o.jsonl")])


def test_compare_text_on_your_model_and_data(tmp_path, saved_text_classifier, capsys):
    source = _write_table(tmp_path / "in.jsonl", [ROWS[0], ROWS[2], ROWS[3]])
    out = tmp_path / "results.json"
    main(["compare", "text", "--model", str(saved_text_classifier), "--data", str(source),
          "--methods", "MaskOptimization,IntegratedGradients", "--batch-size", "2",
          "--mask-setting", "n_steps=4", "--json", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert "3 row(s) of" in printed and "planted shortcut" not in printed
    results = json.loads(out.read_text())
    assert set(results["methods"]) == {"MaskOptimization", "IntegratedGradients"}
    assert results["config"]["rows"] == 3 and results["config"]["model"] == str(saved_text_classifier)
    # The paired difference over the run's batches, filed in a scratch checkpoint when
    # none is given: over all batches it is the difference of the table's means.
    paired = results["paired_differences"]["MaskOptimization"]["IntegratedGradients"]
    assert (paired["batches"], paired["documents"]) == (2, 3)
    for metric in ("aopc_comprehensiveness", "aopc_sufficiency", "deletion_auc"):
        row = paired[metric]
        assert row["difference"] == pytest.approx(
            results["methods"]["MaskOptimization"][metric] - results["methods"]["IntegratedGradients"][metric])
        assert row["low"] <= row["difference"] <= row["high"]
    assert "MaskOptimization minus each method, over 2 batches (3 documents)" in printed
    with pytest.raises(SystemExit, match="--label-column: no column 'gold'"):
        main(["compare", "text", "--model", str(saved_text_classifier), "--data", str(source),
              "--label-column", "gold", "--quiet"])


def test_compare_text_at_token_level_runs_the_drop_in_call(tmp_path, saved_text_classifier):
    from captum_maskopt.text.peers import PAPER_PEER, PEERS

    source = _write_table(tmp_path / "in.jsonl", [ROWS[0], ROWS[3]])
    out = tmp_path / "results.json"
    main(["compare", "text", "--model", str(saved_text_classifier), "--data", str(source), "--level", "token",
          "--mask-setting", "n_steps=4", "--json", str(out), "--quiet"])
    results = json.loads(out.read_text())
    # Token level: every peer, with the drop-in call in place of the word-group method,
    # and not the paper's row, which runs only when named.
    assert set(results["methods"]) == set(PEERS.names) - {"MaskOptimization", PAPER_PEER}
    assert results["config"]["level"] == "token"
    word_level = tmp_path / "word.json"
    main(["compare", "text", "--model", str(saved_text_classifier), "--data", str(source),
          "--methods", f"MaskOptimization,LayerMaskOptimization,{PAPER_PEER}", "--mask-setting", "n_steps=4",
          "--batch-size", "1", "--json", str(word_level), "--quiet"])
    both = json.loads(word_level.read_text())
    assert set(both["methods"]) == {"MaskOptimization", "LayerMaskOptimization", PAPER_PEER}
    # Each of the defaults' rows is paired with every other row; the paper's is a reference.
    assert set(both["paired_differences"]) == {"MaskOptimization", "LayerMaskOptimization"}
    assert set(both["paired_differences"]["MaskOptimization"]) == {"LayerMaskOptimization", PAPER_PEER}


def test_the_papers_row_runs_the_paper_preset_whatever_the_mask_settings(monkeypatch):
    from captum_maskopt.text.integration import TextExplainer
    from captum_maskopt.text.peers import PAPER_PEER, PEERS

    calls = []
    monkeypatch.setattr(TextExplainer, "explain", lambda self, texts, targets, **kwargs: calls.append(kwargs) or [])
    PEERS[PAPER_PEER](object.__new__(TextExplainer), ["a text"], None, {"n_steps": 4})
    assert calls == [{"settings": "paper"}]
