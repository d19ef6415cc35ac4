"""Record the attributions of ``tests/reference_cases.py`` into
``tests/data/reference_attributions.pt``, which ``tests/test_reference_attributions.py``
compares against: a change that should not alter what the method computes is checked
against attributions recorded before it.

    python scripts/record_reference_attributions.py [--only CASE ...]

Run it only when a change is meant to alter the results, and say so in the commit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

import torch

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "tests" / "data" / "reference_attributions.pt"


def main(argv: Optional[Sequence[str]] = None) -> int:
    sys.path.insert(0, str(ROOT / "tests"))
    from reference_cases import CASES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(CASES), help="record these cases only")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    recorded: Dict[str, Dict[str, torch.Tensor]] = torch.load(REFERENCE) if REFERENCE.exists() and args.only else {}
    for name in args.only or CASES:
        recorded[name] = CASES[name]()
        print(f"{name}: {len(recorded[name])} tensors")
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    torch.save(recorded, REFERENCE)
    print(f"wrote {REFERENCE.relative_to(ROOT)} ({REFERENCE.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
