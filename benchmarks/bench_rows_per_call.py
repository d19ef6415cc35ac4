"""Seconds per row of the packaged MiniLM sentiment classifier's forward pass against
the rows per call, at the text comparison's padded length: whether fewer, larger
passes (the final ranking's readings batched across levels, say) would be cheaper::

    python benchmarks/bench_rows_per_call.py [--length 38] [--repeats 7]

Prints, per batch size, the median milliseconds per call and per row (the first two
calls of each size are warm-up and not counted; the sizes take turns). Needs the ``text`` extra.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Dict, List

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=38)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(2)
    from captum_maskopt.text import load_sentiment_classifier

    model, _ = load_sentiment_classifier()
    generator = torch.Generator().manual_seed(0)
    sizes = (8, 16, 32, 64, 128)
    batches = {rows: torch.randint(1000, 2000, (rows, args.length), generator=generator) for rows in sizes}
    seconds: Dict[int, List[float]] = {rows: [] for rows in sizes}
    with torch.no_grad():
        # The sizes take turns within each repeat, so that a slow spell of a shared
        # machine hits all of them.
        for _ in range(args.repeats):
            for rows, ids in batches.items():
                start = time.perf_counter()
                model(ids, torch.ones_like(ids))
                seconds[rows].append(time.perf_counter() - start)
    for rows in sizes:
        median = statistics.median(seconds[rows][2:])
        print(f"{rows:4d} rows per call: {median * 1000:7.1f} ms per call, {median / rows * 1000:6.2f} ms per row")

if __name__ == "__main__":
    main()
