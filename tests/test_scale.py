"""The Ray engine: the same rows as the local engine, every row exactly once when an
actor dies, resumable files, and clear errors for its options.

A local Ray (``ray.init(num_cpus=2)``, loopback only) is started once for the module.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any, Dict, List

import pytest
import torch

from captum_maskopt.cli import main
from captum_maskopt.scale import RayOptions, map_on_ray

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

TEXTS: List[Any] = [
    "a warm, funny and moving film", "dull and far too long", "",
    "the cast is fine but the script is a mess", 42, "one of the year's best",
    "I wanted to like it", "nothing works here",
]
FAST = {"n_steps": 12, "check_every": 4}


@pytest.fixture(scope="module")
def local_ray():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def explainer(saved_text_classifier):
    from captum_maskopt.text import TextExplainer

    return TextExplainer.from_pretrained(saved_text_classifier)


def _explain(explainer, texts, **options) -> List[Dict[str, Any]]:
    from captum_maskopt.text.dataset import explain_texts

    return [row for batch in explain_texts(explainer, texts, batch_size=3, mask_settings=FAST, **options)
            for row in batch]


def _same_rows(left: List[Dict[str, Any]], right: List[Dict[str, Any]]) -> None:
    assert [row["id"] for row in left] == [row["id"] for row in right]
    for a, b in zip(left, right):
        assert a["error"] == b["error"]
        assert a["text"] == b["text"] and a["settings"] == b["settings"]
        assert [w["word"] for w in a["words"]] == [w["word"] for w in b["words"]]
        # The method is batch invariant to float rounding (tests/test_batch_invariance.py).
        assert torch.allclose(torch.tensor([w["score"] for w in a["words"]], dtype=torch.float64),
                              torch.tensor([w["score"] for w in b["words"]], dtype=torch.float64),
                              atol=1e-5)


def test_ray_rows_are_the_local_rows(local_ray, explainer):
    local = _explain(explainer, TEXTS)
    spread = _explain(explainer, TEXTS, engine="ray", ray_options=RayOptions(workers=2))
    _same_rows(local, spread)
    assert [bool(row["error"]) for row in spread] == [False, False, True, False, True, False, False, False]
    assert all(row["seconds"] > 0 for row in spread if not row["error"])


def test_a_killed_actor_loses_and_doubles_no_row(local_ray, explainer):
    from captum_maskopt.text.dataset import explain_texts

    texts = [f"{text} number {i}" for i, text in enumerate(TEXTS * 2) if isinstance(text, str)]
    killed: List[int] = []

    def kill_an_actor(done: int) -> None:
        # After the first batch is back, SIGKILL one actor process of the pool: Ray
        # restarts it and runs its job again.
        if killed:
            return
        for pid in _actor_processes():
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            break

    rows = [row for batch in explain_texts(
        explainer, texts, batch_size=2, mask_settings=FAST, engine="ray",
        ray_options=RayOptions(workers=2), progress=kill_an_actor,
    ) for row in batch]
    assert killed, "no actor process was found to kill"
    assert [row["id"] for row in rows] == list(range(len(texts)))
    assert not any(row["error"] for row in rows)
    _same_rows(rows, _explain(explainer, texts))


def _actor_processes() -> List[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if command.startswith("ray::") and "MapWorker" in command:
            pids.append(int(entry.name))
    return pids


def test_explain_text_command_on_ray_resumes_and_matches_local(local_ray, tmp_path, saved_text_classifier, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS))
    base = ["explain", "text", "--model", str(saved_text_classifier), "--input", str(source),
            "--batch-size", "3", "--mask-setting", "n_steps=12", "--mask-setting", "check_every=4", "--quiet"]
    spread, local = tmp_path / "ray.jsonl", tmp_path / "local.jsonl"
    assert main(base + ["--output", str(spread), "--engine", "ray", "--workers", "2"]) == 0
    assert main(base + ["--output", str(local)]) == 0
    read = [[json.loads(line) for line in path.read_text().splitlines()] for path in (spread, local)]
    _same_rows(*read)
    assert read[0][0]["run"] == read[1][0]["run"]
    # The engine is not part of the run: a local run resumes the Ray run's file.
    lines = spread.read_text().splitlines()
    spread.write_text("\n".join(lines[:4]) + "\n")
    capsys.readouterr()
    assert main(base + ["--output", str(spread), "--engine", "ray"]) == 0
    assert "resuming" in capsys.readouterr().err
    assert [json.loads(line)["id"] for line in spread.read_text().splitlines()] == list(range(len(TEXTS)))


def test_explain_dataset_on_ray_adds_the_local_columns(local_ray, explainer):
    datasets = pytest.importorskip("datasets")
    from captum_maskopt.text.dataset import explain_dataset

    texts = [text for text in TEXTS if isinstance(text, str)]
    data = datasets.Dataset.from_dict({"text": texts, "label": [i % 2 for i in range(len(texts))]})
    local = explain_dataset(data, explainer, target="label", batch_size=3, mask_settings=FAST)
    spread = explain_dataset(data, explainer, target="label", batch_size=3, mask_settings=FAST,
                             engine="ray", ray_options=RayOptions(workers=2))
    assert spread.column_names == local.column_names
    assert list(spread["target"]) == list(local["target"]) and list(spread["error"]) == list(local["error"])
    assert [t for t, e, label in zip(spread["target"], spread["error"], data["label"]) if not e] == [
        label for label, e in zip(data["label"], spread["error"]) if not e]
    for a, b in zip(local["scores"], spread["scores"]):
        assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-5)


def test_compare_on_ray_gives_the_local_figures(local_ray, explainer):
    from captum_maskopt.text.compare import compare_methods

    texts = [text for text in TEXTS if isinstance(text, str) and text]
    labels = [i % 2 for i in range(len(texts))]
    methods = ["MaskOptimization", "ShapleyValueSampling"]
    local, _ = compare_methods(explainer, texts, labels, methods, batch_size=3, mask_settings=FAST)
    spread, _ = compare_methods(explainer, texts, labels, methods, batch_size=3, mask_settings=FAST,
                                engine="ray", ray_options=RayOptions(workers=2))
    for name in methods:
        for metric, value in local[name].items():
            if metric != "seconds_per_example":
                assert spread[name][metric] == pytest.approx(value, abs=1e-6), (name, metric)


def _echo_worker():
    return lambda job: (job, "done")


def test_map_on_ray_keeps_the_jobs_order_and_values(local_ray):
    # A lambda travels by value (this test module is not importable in the actors).
    make_worker = lambda: (lambda job: (job, os.getpid()))  # noqa: E731
    jobs = [None, "text", 3, {"a": [1, 2]}] * 3
    results = list(map_on_ray(make_worker, jobs, RayOptions(workers=2)))
    assert [job for job, _ in results] == jobs
    assert os.getpid() not in {pid for _, pid in results}
    assert list(map_on_ray(make_worker, [], RayOptions())) == []


@pytest.mark.parametrize("options, message", [
    ({"workers": 0}, "workers must be an int >= 1"),
    ({"cpus_per_worker": 0}, "cpus_per_worker must be > 0"),
    ({"gpus_per_worker": -1}, "gpus_per_worker must be >= 0"),
])
def test_ray_options_are_checked(options, message):
    with pytest.raises(ValueError, match=message):
        RayOptions(**options)


def test_engine_errors_name_the_option(tmp_path, saved_text_classifier, explainer):
    from captum_maskopt.text.dataset import explain_texts

    with pytest.raises(ValueError, match="engine must be one of"):
        next(explain_texts(explainer, ["fine"], engine="spark"))
    source = tmp_path / "in.txt"
    source.write_text("fine\n")
    base = ["explain", "text", "--model", str(saved_text_classifier), "--input", str(source),
            "--output", str(tmp_path / "out.jsonl"), "--quiet"]
    for extra, expected in [(["--workers", "2"], "--workers: only with --engine ray"),
                            (["--engine", "ray", "--cpus-per-worker", "0"], "--cpus-per-worker must be > 0")]:
        with pytest.raises(SystemExit) as raised:
            main(base + extra)
        assert expected in str(raised.value)


def test_missing_ray_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ModuleNotFoundError(f"No module named {name!r}", name="ray")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_ray)
    with pytest.raises(ImportError, match=r"captum-maskopt\[scale\]"):
        list(map_on_ray(_echo_worker, [1]))
