"""File this package's rows of a text comparison's checkpoint that ran at earlier
defaults under the names they have at today's, so that a row whose settings are still
computed is read again instead of run again::

    python scripts/refile_earlier_defaults.py docs/results/runs/text-test.jsonl.xz \\
        --tag ca55bf6b --earlier '{"n_steps": 50}'

A row is filed under the settings given over the defaults and a tag of the defaults
(:func:`captum_maskopt.text.checkpoint.method_name`), so a change of one default gives
every row a new name, also the rows whose settings did not change:
``MaskOptimization {"n_steps": 100} @ca55bf6b`` computes what ``MaskOptimization
{"n_steps": 100}`` does at defaults that differ in ``n_steps`` only, and
``MaskOptimization @ca55bf6b`` (50 steps then) what ``MaskOptimization {"n_steps":
50}`` does now. ``--earlier`` gives the fields in which the defaults of ``--tag``
differed from today's; it is checked, since the tag must be the one those defaults
make (:func:`~captum_maskopt.text.checkpoint.defaults_tag`), with today's
``DEFAULTS_REVISION`` (so nothing that an ``"auto"`` choice resolves to has changed
either). Each compared batch of MaskOptimization or LayerMaskOptimization filed under
``--tag`` is filed again, as a copy, under its settings' name today (its labels found
from its old key); a copy whose name and batch are filed already is left out, so a
row run at today's defaults stays as it ran, and the planted-word rows (which store no
texts) are left as they are. Nothing is recomputed; the file is rewritten at once,
compressed as it was, and ``scripts/archive_checkpoint.py`` then moves the rows under
the old tag out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from captum_maskopt.settings import PRESETS
from captum_maskopt.text import checkpoint as filing
from captum_maskopt.text.compare import batch_texts

#: The rows this script refiles: this package's methods whose settings a tag names.
REFILED_METHODS = ("MaskOptimization", "LayerMaskOptimization")


def refiled_lines(
    lines: Sequence[Mapping[str, Any]], tag: str, earlier: Mapping[str, Any]
) -> List[Dict[str, Any]]:
    """The copies of the compared batches of :data:`REFILED_METHODS` filed under
    ``tag`` (at defaults that were today's with ``earlier`` changed), under today's
    names, without those already filed."""
    filed: Set[Tuple[str, str]] = {(line["run"], line["batch"]) for line in lines}
    copies: List[Dict[str, Any]] = []
    for line in lines:
        result = line["result"]
        method, given, line_tag = filing.filed_parts(result["method"])
        if line_tag != tag or method not in REFILED_METHODS or "words" not in result:
            continue
        name = filing.method_name(method, {**earlier, **given})
        texts = list(batch_texts(result))
        labels = filing.batch_labels(line["batch"], "compare", result["method"], texts)
        key = filing.batch_key("compare", name, texts, labels)
        if (line["run"], key) not in filed:
            filed.add((line["run"], key))
            copies.append({"run": line["run"], "batch": key, "result": dict(result, method=name)})
    return copies


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--tag", required=True, help="the defaults tag the rows were filed under")
    parser.add_argument("--earlier", required=True, metavar="JSON",
                        help="the fields in which those defaults differed from today's, as a JSON object")
    args = parser.parse_args(argv)
    try:
        earlier = json.loads(args.earlier)
    except json.JSONDecodeError as error:
        parser.error(f"--earlier: expected a JSON object of settings, got {args.earlier!r} ({error})")
    if not isinstance(earlier, dict):
        parser.error(f"--earlier: expected a JSON object of settings, got {args.earlier!r}")
    try:
        made = filing.defaults_tag(changed=earlier)
    except (TypeError, ValueError) as error:
        parser.error(f"--earlier: {error}")
    if made != args.tag:
        parser.error(f"--earlier: today's defaults with {json.dumps(earlier)} make tag {made}, not "
                     f"{args.tag}: give every field in which the defaults of {args.tag} differed")
    if made == filing.defaults_tag():
        parser.error(f"--tag {args.tag} is today's defaults tag: nothing to refile")
    if not args.checkpoint.exists():
        parser.error(f"checkpoint {args.checkpoint} does not exist")
    lines = list(filing.read_checkpoint(args.checkpoint))
    copies = refiled_lines(lines, args.tag, earlier)
    if copies:
        filing.write_checkpoint(args.checkpoint, [*lines, *copies])
    names = sorted({copy["result"]["method"] for copy in copies})
    print(f"{args.checkpoint}: {len(copies)} batches filed again under today's names"
          + (f" ({', '.join(names)})" if names else "")
          + f"; defaults now {json.dumps({key: PRESETS['default'].as_dict()[key] for key in earlier})}")


if __name__ == "__main__":
    main()
