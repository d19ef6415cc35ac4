"""Refile a text comparison's checkpoint written before Captum's methods were filed
under a tag of their settings (``Lime @5e6f7a8b``; see
:mod:`captum_maskopt.text.checkpoint`), so that its finished batches are read again
instead of run again::

    python scripts/migrate_checkpoint.py docs/results/runs/text-test.jsonl.xz [--seed 0] [--batch-size 8]

Before, a run's key digested every peer's settings, and a peer's batch key its bare
name; now the run key leaves them out and a peer's batch key digests its tagged name.
Nothing is recomputed: each line of a run of the packaged classifier (``compare text``)
or of the shortcut classifier (its planted-word check) gets the new run key, and each
peer line a batch key made from its tagged name and the batch's own texts and labels.
A compared batch's texts are in its word attributions, and its labels are the ones
whose old key matches; a planted-word batch stores no texts, so the planted batches
are made again as ``compare text`` makes them (``--seed``, ``--batch-size``; test and
validation splits, up to 200 documents) and matched by their old keys. A line whose
old key matches nothing, or a run of another model, stops the script with nothing
written. The file is rewritten in place (atomically, compressed as it was).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import captum_maskopt
from captum_maskopt.text import checkpoint as filing
from captum_maskopt.text.compare import batch_texts

#: The peers' settings of the files to refile, as the comparison's
#: ``PEER_SETTINGS`` held them then: their run key digests them, and their rows ran
#: with them, so the tags are theirs.
FILED_WITH: Dict[str, Dict[str, Any]] = {
    "FeatureAblation": {"baselines": "pad-token embeddings", "features": "words", "perturbations_per_eval": 16},
    "InputXGradient": {"baselines": None},
    "IntegratedGradients": {"baselines": "pad token", "n_steps": 50},
    "KernelShap": {"baselines": "pad-token embeddings", "features": "words", "n_samples": 200,
                   "perturbations_per_eval": 32},
    "Lime": {"baselines": "pad-token embeddings", "features": "words", "n_samples": 200,
             "perturbations_per_eval": 32},
    "MASE": {"baselines": None, "n_samples": 128},
    "ShapleyValueSampling": {"baselines": "pad-token embeddings", "features": "words", "n_samples": 10,
                             "perturbations_per_eval": 32},
}


def old_run_key(fingerprint: str, seed: int) -> str:
    """The run key as it was: the peers' settings inside it."""
    return hashlib.sha1(json.dumps(
        [fingerprint, captum_maskopt.__version__, seed, FILED_WITH], sort_keys=True,
    ).encode()).hexdigest()


def planted_batches(seed: int, batch_size: int) -> Tuple[str, List[List[str]]]:
    """The planted-shortcut token and every batch a planted-word check of ``compare
    text`` may have made."""
    from captum_maskopt.text.classifier import load_shortcut_classifier
    from captum_maskopt.text.data import load_snippets, with_shortcut

    token = load_shortcut_classifier()[2]
    batches = []
    for split in ("test", "validation"):
        planted = [e.text for e in with_shortcut(load_snippets(split), token, seed=seed)
                   if token in e.text.lower().split()][:200]
        for count in range(1, len(planted) + 1):
            # The last batch of a check on `count` documents may be any shorter prefix.
            start = (count - 1) // batch_size * batch_size
            batches.append(planted[start:count])
    return token, batches


def _labels_of(key: str, part: str, name: str, texts: Sequence[str]) -> List[int]:
    try:
        return filing.batch_labels(key, part, name, texts)
    except ValueError as error:
        raise SystemExit(f"{error}: not a batch of 'compare text'") from None


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)

    from captum_maskopt.text.classifier import load_sentiment_classifier, load_shortcut_classifier

    runs = {}
    for model in (load_sentiment_classifier()[0], load_shortcut_classifier()[0]):
        fingerprint = filing.model_fingerprint(model)
        runs[old_run_key(fingerprint, args.seed)] = filing.run_key(model, args.seed)
    token, planted = planted_batches(args.seed, args.batch_size)
    part = f"first rank of {token.lower()}"
    lines = list(filing.read_checkpoint(args.checkpoint))
    refiled: List[Dict[str, Any]] = []
    moved = 0
    for line in lines:
        if line["run"] in runs.values():
            refiled.append(line)  # filed under the new keys already
            continue
        if line["run"] not in runs:
            raise SystemExit(f"run {line['run'][:8]} is of another model or seed; nothing written")
        result = line["result"]
        name = result["method"]
        key = line["batch"]
        if name in FILED_WITH:
            tagged = f"{name} @{filing.peer_tag(name, FILED_WITH)}"
            if "words" in result:
                texts = list(batch_texts(result))
                key = filing.batch_key("compare", tagged, texts, _labels_of(key, "compare", name, texts))
            else:
                texts = next((batch for batch in planted if filing.batch_key(part, name, batch) == key), [])
                if not texts:
                    raise SystemExit(f"batch {key} of {name!r} is no planted-word batch; nothing written")
                key = filing.batch_key(part, tagged, texts)
            result = dict(result, method=tagged)
            moved += 1
        refiled.append({"run": runs[line["run"]], "batch": key, "result": result})
    filing.write_checkpoint(args.checkpoint, refiled)
    print(f"{args.checkpoint}: {len(refiled)} lines, {moved} peer batches refiled under tagged names")


if __name__ == "__main__":
    main()
