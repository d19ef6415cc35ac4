"""Summarize the checkpoint file of a ``captum-maskopt compare text --checkpoint PATH``
run, finished or not: for each method, how many documents are done and the mean of
each metric over them, and the planted-shortcut hits so far.

    python scripts/summarize_checkpoint.py run.jsonl [--json summary.json]

Only the batches in the file count, so while a run is going the methods may cover
different documents (a run does all documents of one method before the next).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from captum_maskopt.text.compare import METRICS


def summarize(path: Path) -> Dict[str, Any]:
    """``{"methods": {name: {"documents": n, metric: mean}}, "shortcut_first_rank":
    {name: {"examples": n, "rate": r}}}`` from the file's complete lines."""
    totals: Dict[str, Dict[str, float]] = defaultdict(lambda: dict.fromkeys(METRICS, 0.0))
    documents: Dict[str, int] = defaultdict(int)
    hits: Dict[str, list] = defaultdict(lambda: [0, 0])
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            result = json.loads(line)["result"]
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut short when a run was stopped
        name = result.get("method", "?")
        if "hits" in result:
            hits[name][0] += result["hits"]
            hits[name][1] += result["examples"]
        else:
            documents[name] += len(result["words"])
            for metric in METRICS:
                totals[name][metric] += result["totals"][metric]
    return {
        "methods": {
            name: {"documents": documents[name],
                   **{m: totals[name][m] / documents[name] for m in METRICS}}
            for name in documents
        },
        "shortcut_first_rank": {
            name: {"examples": n, "rate": found / n} for name, (found, n) in hits.items()
        },
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--json", type=Path, help="also write the summary as JSON")
    args = parser.parse_args(argv)
    summary = summarize(args.checkpoint)
    print("method".ljust(24) + "documents".rjust(10) + "".join(m.rjust(24) for m in METRICS))
    for name, row in summary["methods"].items():
        print(name.ljust(24) + str(row["documents"]).rjust(10)
              + "".join(f"{row[m]:24.4f}" for m in METRICS))
    for name, row in summary["shortcut_first_rank"].items():
        print(f"shortcut first rank  {name:24s} {row['rate']:.3f} of {row['examples']}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
