"""Documents per second of ``explain text`` on the local engine and on a local Ray with
1 and 2 workers, on the same rows, and the Ray engine's overhead at one worker:

    python benchmarks/bench_scale.py                       # CPU: 1 core per worker
    python benchmarks/bench_scale.py --gpus-per-worker 1   # one GPU per worker
    python benchmarks/bench_scale.py --gpus-per-worker 0.5 # two workers per GPU

Each configuration runs ``--repeats`` times, interleaved (local, Ray 1, Ray 2, local,
...), because the machine is shared and noisy; the figures are medians. "steady" is
the throughput once the model is loaded: documents after the first batch over the
time from the first batch's arrival to the last's, so that Ray's start, the actors'
start and the model's load (printed apart as "start") do not count. The overhead is
the median over repeats of the paired ratio local steady / Ray steady - 1, both at
one worker with the same threads (``--cpus-per-worker``). Needs the ``text`` and
``scale`` extras; MaskOptimization runs at the text settings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from typing import Any, Dict, List, Optional

import torch


def _run(explainer: Any, texts: List[str], batch_size: int, engine: str, options: Any) -> Dict[str, float]:
    from captum_maskopt.text.dataset import explain_texts

    begun = time.perf_counter()
    arrivals = []
    for _ in explain_texts(explainer, texts, batch_size=batch_size, engine=engine, ray_options=options):
        arrivals.append(time.perf_counter())
    later = len(texts) - batch_size
    return {"seconds": arrivals[-1] - begun, "start": arrivals[0] - begun,
            "steady_docs_per_second": later / (arrivals[-1] - arrivals[0])}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cpus-per-worker", type=float, default=1.0)
    parser.add_argument("--gpus-per-worker", type=float, default=0.0)
    args = parser.parse_args(argv)
    if args.documents < 2 * args.batch_size:
        parser.error("--documents must hold at least two batches")
    warnings.filterwarnings("ignore")
    import ray

    from captum_maskopt.scale import RayOptions
    from captum_maskopt.text import TextExplainer, load_sentiment_classifier, load_snippets

    threads = max(1, int(args.cpus_per_worker))
    torch.set_num_threads(threads)
    explainer = TextExplainer(*load_sentiment_classifier(), label_names=("negative", "positive"))
    on_gpu = args.gpus_per_worker > 0 and torch.cuda.is_available()
    if on_gpu:
        explainer.model.to("cuda")
    texts = [d.text for d in load_snippets("test")[: args.documents]]
    begun = time.perf_counter()
    ray.init(num_cpus=max(2, int(2 * args.cpus_per_worker)), include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    ray_start = time.perf_counter() - begun
    configurations = {
        "local": ("local", None),
        "ray_1_worker": ("ray", RayOptions(workers=1, cpus_per_worker=args.cpus_per_worker,
                                           gpus_per_worker=args.gpus_per_worker)),
        "ray_2_workers": ("ray", RayOptions(workers=2, cpus_per_worker=args.cpus_per_worker,
                                            gpus_per_worker=args.gpus_per_worker)),
    }
    runs: Dict[str, List[Dict[str, float]]] = {name: [] for name in configurations}
    for repeat in range(args.repeats):
        for name, (engine, options) in configurations.items():
            figures = _run(explainer, texts, args.batch_size, engine, options)
            runs[name].append(figures)
            print(json.dumps({"repeat": repeat, "configuration": name, **figures}), flush=True)
    ray.shutdown()
    summary: Dict[str, Any] = {
        "documents": args.documents, "batch_size": args.batch_size, "repeats": args.repeats,
        "torch_threads_per_worker": threads, "gpus_per_worker": args.gpus_per_worker,
        "device": torch.cuda.get_device_name() if on_gpu else "cpu", "ray_init_seconds": ray_start,
    }
    for name, figures in runs.items():
        summary[name] = {
            "median_docs_per_second": statistics.median(len(texts) / f["seconds"] for f in figures),
            "median_steady_docs_per_second": statistics.median(f["steady_docs_per_second"] for f in figures),
            "median_start_seconds": statistics.median(f["start"] for f in figures),
        }
    ratios = [local["steady_docs_per_second"] / spread["steady_docs_per_second"] - 1
              for local, spread in zip(runs["local"], runs["ray_1_worker"])]
    summary["ray_1_worker_steady_overhead"] = statistics.median(ratios)
    summary["ray_2_workers_over_1_steady"] = statistics.median(
        two["steady_docs_per_second"] / one["steady_docs_per_second"]
        for one, two in zip(runs["ray_1_worker"], runs["ray_2_workers"]))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
