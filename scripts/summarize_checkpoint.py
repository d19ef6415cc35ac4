"""Summarize the checkpoint file of a ``captum-maskopt compare text --checkpoint PATH``
run, finished or not: for each method, how many documents are done and the mean of
each metric over them, and the planted-shortcut hits so far.

    python scripts/summarize_checkpoint.py run.jsonl[.xz] [--common] [--json summary.json]
        [--time-ratio METHOD OTHER] [--difference METHOD OTHER] [--run all|KEY]
        [--against OTHER_FILE]

The file may be plain or compressed (``.xz``, ``.gz``), as the comparison wrote it.

Only the batches in the file count, and only those of one run: the lines of a file
carry the key of the run that wrote them (the model, the package version, the
peers' settings and the seed; see ``captum_maskopt.text.checkpoint``), and after a
change of any of these a run files the same documents again under a new key. The summary reads the
latest run unless ``--run`` names another (a key or its first characters) or ``all``,
so that results of two models are never averaged together (two sets of this package's
defaults are kept apart by the rows' names): the
run that wrote the file's last document batch, and for the planted-shortcut rows the
one that wrote its last shortcut batch (the shortcut classifier is another model, so
one comparison writes two keys). Within the run, while it is going, the methods may cover
different documents (a run explains each batch with every method before the next batch, but
runs chained into one file with different methods or settings need not cover the same ones);
``--common`` keeps only the batches that every method in the file has finished, so the
methods are compared on the same documents. This package's rows are filed under
names with a tag of the defaults they ran with (``MaskOptimization @1a2b3c4d``); a
method named without it means the one such row in the run. ``--time-ratio A B`` compares the seconds
of two methods on the batches both finished (the same documents in the same batches):
the median over those batches of A's seconds over B's, and the ratio of their totals.
``--difference A B`` gives, on the same shared batches, A's mean minus B's for each
metric, with a 95 % bootstrap interval that resamples whole batches (a batch's
documents are summed in the file, so the batch is the unit that can be resampled):
an interval that contains 0 means the two methods are not told apart on these
documents. With ``--against FILE``, ``--time-ratio`` and ``--difference`` read OTHER
from another checkpoint file, on the batches of the same documents: a variant that an
experiment script filed under the method's own name, in a file of its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from captum_maskopt.text.checkpoint import filed_method, read_checkpoint, results_of, runs_of
from captum_maskopt.text.compare import (
    BATCH_COLUMNS, EVIDENCE_METRICS, METRICS, batch_texts, documents_behind, shared_batches,
)
from captum_maskopt.text.compare import paired_difference as paired_difference_of

#: Every column of a batch's totals.
COLUMNS = BATCH_COLUMNS


#: ``--kind`` choices: the packaged paragraphs are the batches that carry the
#: human-evidence metrics, the snippets (and a user's own documents) the others.
KINDS = ("snippets", "paragraphs")


#: ``run`` values besides a key: the latest run, or every run.
LATEST_RUN, ALL_RUNS = "latest", "all"


def chosen_runs(path: Path, run: str = LATEST_RUN) -> Optional[List[str]]:
    """The run keys that ``run`` names in the file at ``path``: for ``"latest"``, the
    run that wrote its last document batch and the one that wrote its last
    planted-shortcut batch (one comparison writes both, under two keys, the shortcut
    classifier being another model); None for every run (``"all"``); or the one key
    that starts with ``run``. A prefix that names no key, or more than one, raises
    ``ValueError``."""
    keys = runs_of(path)
    if run == ALL_RUNS:
        return None
    if run == LATEST_RUN:
        latest: Dict[bool, str] = {}
        for entry in read_checkpoint(path):
            latest["hits" in entry["result"]] = entry["run"]
        return list(dict.fromkeys(latest[part] for part in sorted(latest)))
    matching = [key for key in keys if key.startswith(run)]
    if len(matching) != 1:
        raise ValueError(f"run {run!r} names {len(matching)} of the file's runs "
                         f"({', '.join(key[:8] for key in keys) or 'none'})")
    return matching


def _results(path: Path, kind: Optional[str], run: str = LATEST_RUN) -> List[Dict[str, Any]]:
    """The batch results (:func:`results_of`) of the runs ``run`` names
    (:func:`chosen_runs`), of one ``kind`` if given."""
    results = results_of(path, chosen_runs(path, run))
    if kind is None:
        return results
    return [r for r in results if "hits" not in r
            and ("evidence_documents" in r["totals"]) == (kind == "paragraphs")]


def summarize(
    path: Path, common: bool = False, kind: Optional[str] = None, run: str = LATEST_RUN
) -> Dict[str, Any]:
    """``{"methods": {name: {"documents": n, metric: mean}}, "shortcut_first_rank":
    {name: {"examples": n, "rate": r}}}`` from the file's complete lines (the evidence
    metrics averaged over the ``evidence_documents`` they were measured on); with
    ``common``, the methods' means only over the batches that all of them finished;
    with ``kind``, over its batches only (no shortcut rows then); of the runs ``run``
    names (:func:`chosen_runs`)."""
    results = _results(path, kind, run)
    batches = [r for r in results if "hits" not in r]
    if common:
        done: Dict[str, Set[Tuple[str, ...]]] = defaultdict(set)
        for result in batches:
            done[result.get("method", "?")].add(batch_texts(result))
        shared = set.intersection(*done.values()) if done else set()
        batches = [r for r in batches if batch_texts(r) in shared]
    totals: Dict[str, Dict[str, float]] = defaultdict(dict)
    counts: Dict[str, Dict[str, float]] = defaultdict(dict)
    documents: Dict[str, int] = defaultdict(int)
    for result in batches:
        name = result.get("method", "?")
        documents[name] += len(result["words"])
        for metric in COLUMNS:
            # A file written before a metric was added has none of it: left out.
            if metric in result["totals"]:
                totals[name][metric] = totals[name].get(metric, 0.0) + result["totals"][metric]
                counts[name][metric] = (counts[name].get(metric, 0.0)
                                        + documents_behind(metric, result["totals"], len(result["words"])))
    hits: Dict[str, list] = defaultdict(lambda: [0, 0])
    for result in results:
        if "hits" in result:
            name = result.get("method", "?")
            hits[name][0] += result["hits"]
            hits[name][1] += result["examples"]
    return {
        "methods": {
            name: {"documents": documents[name],
                   **{m: value / counts[name][m] for m, value in totals[name].items() if counts[name][m] > 0},
                   **({"evidence_documents": int(counts[name][EVIDENCE_METRICS[0]])}
                      if counts[name].get(EVIDENCE_METRICS[0], 0) > 0 else {})}
            for name in documents
        },
        "shortcut_first_rank": {
            name: {"examples": n, "rate": found / n} for name, (found, n) in hits.items()
        },
    }


def _filed(results: Sequence[Mapping[str, Any]], *names: str) -> List[str]:
    """The filed names that ``names`` mean (:func:`filed_method`): this package's rows
    may be named without their defaults tag."""
    filed = [str(result.get("method", "?")) for result in results if "hits" not in result]
    return [filed_method(name, filed) for name in names]


def _paired_results(
    path: Path, method: str, other: str, kind: Optional[str], run: str, against: Optional[Path]
) -> Tuple[List[Dict[str, Any]], str, str]:
    """The batch results that hold ``method`` (from ``path``) and ``other`` (from
    ``against`` if given, else from ``path``), and the names they are filed under
    there. ``other`` read from ``against`` is renamed ``"OTHER (FILE)"``, so that a
    variant filed under the same name in a file of its own (by an experiment script)
    pairs with the row of ``path``. ``against`` is read at its latest run, or at all
    of them when ``run`` is ``"all"``."""
    try:
        results = _results(path, kind, run)
        if against is None:
            mine, theirs = _filed(results, method, other)
            return results, mine, theirs
        mine = _filed(results, method)[0]
    except ValueError as error:
        raise ValueError(f"{error} in {path}") from None
    try:
        other_results = _results(against, kind, ALL_RUNS if run == ALL_RUNS else LATEST_RUN)
        filed_other = _filed(other_results, other)[0]
    except ValueError as error:
        raise ValueError(f"{error} in {against}") from None
    renamed = f"{filed_other} ({against.name})"
    return results + [dict(r, method=renamed) for r in other_results if r.get("method") == filed_other], mine, renamed


def _shared_batches(
    path: Path, method: str, other: str, kind: Optional[str] = None, run: str = LATEST_RUN,
    against: Optional[Path] = None,
) -> Tuple[List[Mapping[str, float]], List[Mapping[str, float]], List[int]]:
    """:func:`captum_maskopt.text.compare.shared_batches` of the file's batches (of
    ``against``'s for ``other``, if given)."""
    results, mine, theirs = _paired_results(path, method, other, kind, run, against)
    try:
        return shared_batches(results, mine, theirs)
    except ValueError as error:
        raise ValueError(f"{error} in {path}") from None


def time_ratio(
    path: Path, method: str, other: str, kind: Optional[str] = None, run: str = LATEST_RUN,
    against: Optional[Path] = None,
) -> Dict[str, Any]:
    """``{"batches": n, "median": m, "total": t}``: over the ``n`` batches that both
    ``method`` and ``other`` (read from ``against`` if given) finished, the median of
    the per-batch ratio of their seconds and the ratio of the summed seconds."""
    # totals hold the batch's sum over documents of seconds per example.
    mine, theirs, _ = _shared_batches(path, method, other, kind, run, against)
    seconds = [(a["seconds_per_example"], b["seconds_per_example"]) for a, b in zip(mine, theirs)]
    return {
        "batches": len(seconds),
        "median": statistics.median(a / b for a, b in seconds),
        "total": sum(a for a, _ in seconds) / sum(b for _, b in seconds),
    }


def paired_difference(
    path: Path, method: str, other: str, resamples: int = 2000, seed: int = 0,
    kind: Optional[str] = None, run: str = LATEST_RUN, against: Optional[Path] = None,
) -> Dict[str, Any]:
    """:func:`captum_maskopt.text.compare.paired_difference` of ``method`` minus
    ``other`` on the file's batches of the runs ``run`` names, of one ``kind`` if given;
    ``other`` read from the file ``against`` if given."""
    results, mine, theirs = _paired_results(path, method, other, kind, run, against)
    try:
        return paired_difference_of(results, mine, theirs, resamples, seed)
    except ValueError as error:
        raise ValueError(f"{error} in {path}") from None


def _print_time_ratio(pair: Sequence[str], ratio: Dict[str, Any]) -> None:
    print(f"seconds {pair[0]} / {pair[1]} over {ratio['batches']} shared "
          f"batches: median {ratio['median']:.2f}, totals {ratio['total']:.2f}")


def _print_difference(pair: Sequence[str], difference: Dict[str, Any]) -> None:
    print(f"{pair[0]} minus {pair[1]} over {difference['batches']} shared "
          f"batches ({difference['documents']} documents), with 95 % bootstrap intervals:")
    for metric in COLUMNS:
        if metric not in difference:
            continue
        row = difference[metric]
        print(f"  {metric:24s} {row['difference']:+.4f}  [{row['low']:+.4f}, {row['high']:+.4f}]")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--common", action="store_true",
                        help="only the batches that every method has finished")
    parser.add_argument("--json", type=Path, help="also write the summary as JSON")
    parser.add_argument("--time-ratio", nargs=2, metavar=("METHOD", "OTHER"),
                        help="seconds of METHOD over OTHER's on the batches both finished")
    parser.add_argument("--difference", nargs=2, metavar=("METHOD", "OTHER"),
                        help="METHOD's means minus OTHER's on the batches both finished, "
                             "with 95%% bootstrap intervals")
    parser.add_argument("--against", type=Path, metavar="FILE",
                        help="read OTHER of --time-ratio and --difference from this checkpoint "
                             "file (its latest run): a variant filed under the same name in a "
                             "file of its own, such as an experiment script's")
    parser.add_argument("--kind", choices=KINDS,
                        help="only the snippets' batches, or only the paragraphs' (those "
                             "with the human-evidence metrics); default: all")
    parser.add_argument("--run", default=LATEST_RUN,
                        help="the run to read: 'latest' (the ones that wrote the file's last "
                             "document batch and its last shortcut batch, the default), 'all', or a run key or its first characters")
    args = parser.parse_args(argv)
    try:
        runs = chosen_runs(args.checkpoint, args.run)
    except ValueError as error:
        parser.error(f"--run: {error}")
    left_out = [key for key in runs_of(args.checkpoint) if runs is not None and key not in runs]
    if left_out:
        print(f"run {', '.join(key[:8] for key in runs or [])}; left out: the lines of run(s) {', '.join(k[:8] for k in left_out)} "
              f"(--run all reads them too)")
    summary = summarize(args.checkpoint, args.common, args.kind, args.run)
    for shown in (METRICS, COLUMNS[len(METRICS):]):
        if shown is not METRICS and not any(m in row for row in summary["methods"].values() for m in shown):
            continue
        columns = [max(12, len(metric) + 2) for metric in shown]
        print("method".ljust(24) + "documents".rjust(10) + "".join(m.rjust(c) for m, c in zip(shown, columns)))
        for name, row in summary["methods"].items():
            print(name.ljust(24) + str(row["documents"]).rjust(10)
                  + "".join(f"{row[m]:{c}.4f}" if m in row else "—".rjust(c) for m, c in zip(shown, columns)))
    for name, row in summary["shortcut_first_rank"].items():
        print(f"shortcut first rank  {name:24s} {row['rate']:.3f} of {row['examples']}")
    # Each option names two methods and adds one entry to the summary.
    for option, compute, show in (
        ("time_ratio", time_ratio, _print_time_ratio),
        ("difference", paired_difference, _print_difference),
    ):
        pair = getattr(args, option)
        if not pair:
            continue
        try:
            figures = compute(args.checkpoint, *pair, kind=args.kind, run=args.run, against=args.against)
        except ValueError as error:
            parser.error(f"--{option.replace('_', '-')}: {error}")
        named = [pair[0], f"{pair[1]} ({args.against.name})"] if args.against else pair
        summary[option] = {"methods": named, **figures}
        show(named, figures)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
