"""Move a text comparison's superseded rows out of its checkpoint into a record file,
so that the file the tables are made from holds only what they read::

    python scripts/archive_checkpoint.py docs/results/runs/text-test.jsonl.xz \\
        --to docs/results/runs/text-test-earlier.jsonl.xz

A row is superseded when the tag of its filed name (see
:func:`captum_maskopt.text.checkpoint.method_name`) is not the one its method gets
now: this package's rows ran at defaults that have changed since, a Captum method's
rows with keywords the comparison no longer calls it with. The comparison never reads
them again (it files and looks up the current tag), but the docs quote differences to
them, which ``scripts/summarize_checkpoint.py ... --against RECORD`` still computes.
Lines already in the record file stay there (a batch filed in both keeps the moved
line); both files are replaced at once, compressed as their suffixes say. Nothing is
computed, and a second call moves nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from captum_maskopt.text import checkpoint as filing


def is_current(filed: str) -> bool:
    """Whether a filed name (``NAME [SETTINGS] @TAG``) carries the tag its method is
    filed under now."""
    method, _, tag = filing.filed_parts(filed)
    return filing.filed_parts(filing.method_name(method, None))[2] == tag


def split_lines(lines: Sequence[Mapping[str, Any]]) -> Tuple[List[Mapping[str, Any]], List[Mapping[str, Any]]]:
    """The lines filed under current tags, and the superseded ones, each in file order."""
    current: List[Mapping[str, Any]] = []
    superseded: List[Mapping[str, Any]] = []
    for line in lines:
        (current if is_current(line["result"]["method"]) else superseded).append(line)
    return current, superseded


def merged(kept: Sequence[Mapping[str, Any]], added: Sequence[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    """``kept`` then ``added``, a (run, batch) pair filed in both once, as in ``added``."""
    by_key: Dict[Tuple[str, str], Mapping[str, Any]] = {}
    for line in [*kept, *added]:
        by_key.pop((line["run"], line["batch"]), None)
        by_key[(line["run"], line["batch"])] = line
    return list(by_key.values())


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--to", type=Path, required=True, metavar="RECORD",
                        help="the record file the superseded rows go to (created if absent)")
    args = parser.parse_args(argv)
    if args.to.resolve() == args.checkpoint.resolve():
        parser.error("--to: expected a file other than the checkpoint")
    if not args.checkpoint.exists():
        parser.error(f"checkpoint {args.checkpoint} does not exist")
    current, superseded = split_lines(list(filing.read_checkpoint(args.checkpoint)))
    if superseded:
        record = list(filing.read_checkpoint(args.to)) if args.to.exists() else []
        filing.write_checkpoint(args.to, merged(record, superseded))
        filing.write_checkpoint(args.checkpoint, current)
    names = sorted({line["result"]["method"] for line in superseded})
    print(f"{args.checkpoint}: {len(current)} lines kept; {len(superseded)} moved to {args.to}"
          + (f" ({', '.join(names)})" if names else ""))


if __name__ == "__main__":
    main()
