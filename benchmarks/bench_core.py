"""Speed figures for the core optimization loop of captum_maskopt.

Run from the repository root::

    python benchmarks/bench_core.py [--quick] [--device cpu|cuda] [--profile]

Two small, randomly initialised models (eval mode, fixed seeds; no downloads):

* ``cnn``:  3 conv layers + pooling + linear, 10 classes, inputs (N, 3, 32, 32),
  explained with ``MaskOptimization`` (zero baselines).
* ``bert``: ``BertForSequenceClassification`` from a ``BertConfig`` (hidden 128,
  2 layers, 2 heads, intermediate 256, vocab 1000, 2 labels), token ids (N, 64) with an
  attention mask, explained with ``LayerMaskOptimization`` on ``model.bert.embeddings``
  with pad-id (0) baselines and the attention mask as ``additional_forward_args``.

Figures (each the median over several repeats, after a warm-up):

1. step ratio: time of one optimization step / time of one bare forward + backward
   of the model on the same doubled batch (2n rows; gradient via torch.autograd.grad
   w.r.t. an input-sized leaf for the CNN, w.r.t. the embeddings output for BERT).
   The step time is (t(n_steps=S+T) - t(n_steps=S)) / T with tolerance=0 and a huge
   check_every, so set-up costs cancel. Batch 8. Goal: <= 1.2. Bare and step timings
   are taken interleaved, repeat by repeat, and the median of the per-repeat ratios is
   reported, so a slow spell of a shared machine hits both sides. Also printed: the
   ATen operators dispatched per step and per bare forward + backward (a count that
   timing noise cannot blur).
2. examples per second of attribute() with default settings at batch sizes 1, 8, 32,
   with the median number of steps actually taken (record.steps).
3. wall time of attribute() (defaults) / wall time of Captum's IntegratedGradients
   (n_steps=50; LayerIntegratedGradients on the embeddings for BERT), batch 8.

``--quick`` cuts the repeats for a smoke run. ``--profile`` additionally prints the
operators that dominate one fixed-length attribute() call of each model.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Tuple

import torch
from torch import Tensor, nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from captum.attr import IntegratedGradients, LayerIntegratedGradients  # noqa: E402

from captum_maskopt import LayerMaskOptimization, MaskOptimization  # noqa: E402

STEP_RATIO_GOAL = 1.2
BATCH_SIZES = (1, 8, 32)
REPORT_BATCH = 8
SEQ_LEN = 64
NO_CHECK = 10**9  # check_every larger than any n_steps: no convergence checks


# --------------------------------------------------------------------------- timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall time of one call of ``fn`` in seconds."""
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def median_time(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn, device) for _ in range(repeats))


# --------------------------------------------------------------------------- models


class SmallCNN(nn.Module):
    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(64, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


@dataclass
class Case:
    """One model with everything needed to explain a batch of it."""

    name: str
    description: str
    device: torch.device
    make_inputs: Callable[[int], Dict[str, Tensor]]
    # attribute(batch, **settings) -> (attributions, record)
    attribute: Callable[..., Any]
    # bare forward + backward on the doubled batch (2n rows); built once per batch
    make_bare: Callable[[Dict[str, Tensor]], Callable[[], Any]]
    # Captum's IG / LayerIG on the same batch
    integrated_gradients: Callable[[Dict[str, Tensor]], Any]


def _doubled(t: Tensor) -> Tensor:
    return torch.cat([t, t])


def _target_loss(logits: Tensor, target: Tensor) -> Tensor:
    # log-probability of the target, like the objective's sufficiency term
    return logits.log_softmax(-1).gather(1, target[:, None]).sum()


def cnn_case(device: torch.device) -> Case:
    torch.manual_seed(0)
    model = SmallCNN().to(device).eval()
    method = MaskOptimization(model)

    def make_inputs(n: int) -> Dict[str, Tensor]:
        g = torch.Generator().manual_seed(1000 + n)
        x = torch.rand(n, 3, 32, 32, generator=g).to(device)
        with torch.no_grad():
            target = model(x).argmax(1)
        return {"x": x, "target": target}

    def attribute(batch: Dict[str, Tensor], **settings: Any) -> Any:
        return method.attribute(batch["x"], target=batch["target"], return_record=True, **settings)

    def make_bare(batch: Dict[str, Tensor]) -> Callable[[], Any]:
        leaf = _doubled(batch["x"]).detach().requires_grad_()
        target = _doubled(batch["target"])

        def bare() -> Any:
            with torch.enable_grad():
                return torch.autograd.grad(_target_loss(model(leaf), target), leaf)

        return bare

    ig = IntegratedGradients(model)

    def integrated_gradients(batch: Dict[str, Tensor]) -> Any:
        return ig.attribute(batch["x"], target=batch["target"], n_steps=50)

    return Case(
        "cnn", "small CNN (3 conv + pool + linear, 10 classes), inputs (N,3,32,32), "
        "MaskOptimization, zero baselines", device, make_inputs, attribute, make_bare,
        integrated_gradients,
    )


def bert_case(device: torch.device) -> Case:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=1000, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=256, num_labels=2, max_position_embeddings=128,
    )
    model = BertForSequenceClassification(config).to(device).eval()
    embeddings = model.bert.embeddings

    def forward(input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return model(input_ids=input_ids, attention_mask=attention_mask).logits

    method = LayerMaskOptimization(forward, embeddings)

    def make_inputs(n: int) -> Dict[str, Tensor]:
        g = torch.Generator().manual_seed(2000 + n)
        ids = torch.randint(5, config.vocab_size, (n, SEQ_LEN), generator=g)
        lengths = torch.randint(SEQ_LEN // 2, SEQ_LEN + 1, (n,), generator=g)
        lengths[0] = SEQ_LEN  # at least one full-length example
        attention_mask = (torch.arange(SEQ_LEN)[None, :] < lengths[:, None]).long()
        ids = ids * attention_mask  # pad id 0 after each example's length
        ids, attention_mask = ids.to(device), attention_mask.to(device)
        with torch.no_grad():
            target = forward(ids, attention_mask).argmax(1)
        baselines = torch.zeros_like(ids)
        return {"ids": ids, "mask": attention_mask, "target": target, "baselines": baselines}

    def attribute(batch: Dict[str, Tensor], **settings: Any) -> Any:
        return method.attribute(
            batch["ids"], baselines=batch["baselines"], target=batch["target"],
            additional_forward_args=(batch["mask"],), return_record=True, **settings,
        )

    def make_bare(batch: Dict[str, Tensor]) -> Callable[[], Any]:
        ids, mask, target = (_doubled(batch[k]) for k in ("ids", "mask", "target"))
        with torch.no_grad():
            leaf = embeddings(ids)
        leaf = leaf.detach().requires_grad_()

        def bare() -> Any:
            # The model's full forward, with the embeddings output replaced by a leaf,
            # exactly where LayerMaskOptimization puts its views.
            handle = embeddings.register_forward_hook(lambda module, args, output: leaf)
            try:
                with torch.enable_grad():
                    return torch.autograd.grad(_target_loss(forward(ids, mask), target), leaf)
            finally:
                handle.remove()

        return bare

    lig = LayerIntegratedGradients(forward, embeddings)

    def integrated_gradients(batch: Dict[str, Tensor]) -> Any:
        return lig.attribute(
            batch["ids"], baselines=batch["baselines"], target=batch["target"],
            additional_forward_args=(batch["mask"],), n_steps=50,
        )

    return Case(
        "bert", "BertForSequenceClassification (hidden 128, 2 layers, 2 heads, inter 256, "
        "vocab 1000, 2 labels), ids (N,64) + attention mask, LayerMaskOptimization on "
        "bert.embeddings, pad-id baselines", device, make_inputs, attribute, make_bare,
        integrated_gradients,
    )


# --------------------------------------------------------------------------- figures


@dataclass
class Repeats:
    bare: int
    step_pairs: int
    short_steps: int
    extra_steps: int
    throughput: int
    ig: int
    warmup: int


def step_ratio(case: Case, reps: Repeats) -> Dict[str, float]:
    """Bare and step times are measured interleaved, repeat by repeat, so a slow spell
    of the machine hits both; the ratio is the median of the per-repeat ratios."""
    batch = case.make_inputs(REPORT_BATCH)
    bare = case.make_bare(batch)

    fixed = dict(tolerance=0.0, check_every=NO_CHECK)
    short, long_ = reps.short_steps, reps.short_steps + reps.extra_steps

    def run(n_steps: int) -> Any:
        return case.attribute(batch, n_steps=n_steps, **fixed)

    for _ in range(reps.warmup * 3):
        bare()
    for _ in range(reps.warmup):
        run(short)
        run(long_)
    _, record = run(long_)
    assert int(record.steps.min()) == long_, "examples stopped early despite tolerance=0"
    bares, steps, ratios = [], [], []
    for _ in range(reps.step_pairs):
        bare_s = statistics.median(timed(bare, case.device) for _ in range(reps.bare))
        t_short = timed(lambda: run(short), case.device)
        t_long = timed(lambda: run(long_), case.device)
        step_s = (t_long - t_short) / reps.extra_steps
        bares.append(bare_s)
        steps.append(step_s)
        ratios.append(step_s / bare_s)
    return {"bare_s": statistics.median(bares), "step_s": statistics.median(steps),
            "ratio": statistics.median(ratios), "low": min(ratios), "high": max(ratios)}


def ops_per_step(case: Case, extra_steps: int = 10) -> Tuple[float, int]:
    """ATen operators dispatched per optimization step and per bare forward + backward
    (forward and backward ops alike): a count that machine noise cannot blur. On a small
    model, per-operator overhead (dispatch, autograd bookkeeping, kernel launches) is
    what the step pays beyond the model."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            self.n += 1
            return func(*args, **(kwargs or {}))

    batch = case.make_inputs(REPORT_BATCH)
    fixed = dict(tolerance=0.0, check_every=NO_CHECK)
    counts = []
    for n_steps in (5, 5 + extra_steps):
        with Count() as counter:
            case.attribute(batch, n_steps=n_steps, **fixed)
        counts.append(counter.n)
    with Count() as counter:
        case.make_bare(batch)()
    return (counts[1] - counts[0]) / extra_steps, counter.n


def throughput(case: Case, reps: Repeats) -> List[Dict[str, float]]:
    rows = []
    for n in BATCH_SIZES:
        batch = case.make_inputs(n)
        for _ in range(reps.warmup):
            case.attribute(batch)
        times, steps = [], []
        for _ in range(reps.throughput):
            holder: Dict[str, Any] = {}
            times.append(timed(lambda: holder.setdefault("r", case.attribute(batch)), case.device))
            steps.extend(holder["r"][1].steps.tolist())
        t = statistics.median(times)
        rows.append({"n": n, "seconds": t, "per_s": n / t,
                     "steps": statistics.median(steps), "min_steps": min(steps),
                     "max_steps": max(steps)})
    return rows


def versus_ig(case: Case, reps: Repeats) -> Dict[str, float]:
    batch = case.make_inputs(REPORT_BATCH)
    ours = median_time(lambda: case.attribute(batch), case.device, reps.ig, reps.warmup)
    ig = median_time(lambda: case.integrated_gradients(batch), case.device, reps.ig, reps.warmup)
    return {"ours_s": ours, "ig_s": ig, "ratio": ours / ig}


def profile(case: Case, n_steps: int, rows: int) -> str:
    from torch.profiler import ProfilerActivity, profile as torch_profile

    batch = case.make_inputs(REPORT_BATCH)
    settings = dict(n_steps=n_steps, tolerance=0.0, check_every=NO_CHECK)
    case.attribute(batch, **settings)
    activities = [ProfilerActivity.CPU]
    if case.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with torch_profile(activities=activities) as prof:
        case.attribute(batch, **settings)
    sort = "self_cuda_time_total" if case.device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=sort, row_limit=rows)


# --------------------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repeats: a smoke run")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--profile", action="store_true",
                        help="also print the top operators of one attribute() call per model")
    parser.add_argument("--models", default="cnn,bert", help="comma-separated: cnn,bert")
    args = parser.parse_args()

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    device = torch.device(args.device)
    if args.quick:
        reps = Repeats(bare=5, step_pairs=5, short_steps=5, extra_steps=15, throughput=2,
                       ig=2, warmup=1)
    else:
        reps = Repeats(bare=9, step_pairs=11, short_steps=5, extra_steps=50, throughput=7,
                       ig=7, warmup=2)

    started = time.perf_counter()
    print("captum_maskopt core benchmark" + (" (quick)" if args.quick else ""))
    print(f"  torch {torch.__version__}, python {platform.python_version()}, "
          f"device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
          + f", torch threads {torch.get_num_threads()}, cpu count {os.cpu_count()}")
    print(f"  medians over repeats: step pairs {reps.step_pairs} (S={reps.short_steps}, "
          f"T={reps.extra_steps}; each pair with a median of {reps.bare} bare calls), "
          f"throughput {reps.throughput}, "
          f"IG {reps.ig}; warm-up {reps.warmup}")
    print("  models are randomly initialised (eval mode, fixed seeds)")

    builders = {"cnn": cnn_case, "bert": bert_case}
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    summary: List[Tuple[str, float, float]] = []
    for name in names:
        case = builders[name](device)
        print()
        print(f"== {case.name}: {case.description}")

        r = step_ratio(case, reps)
        verdict = "OK" if r["ratio"] <= STEP_RATIO_GOAL else "ABOVE GOAL"
        print(f"  1. step ratio, batch {REPORT_BATCH} ({2 * REPORT_BATCH} rows per forward)")
        print(f"     bare forward+backward      {r['bare_s'] * 1e3:9.2f} ms")
        print(f"     one optimization step      {r['step_s'] * 1e3:9.2f} ms"
              f"   (overhead {(r['step_s'] - r['bare_s']) * 1e3:+.2f} ms)")
        print(f"     step ratio                 {r['ratio']:9.2f}   goal <= {STEP_RATIO_GOAL}"
              f"   [{verdict}]   (repeats ranged {r['low']:.2f}-{r['high']:.2f})")
        if r["high"] > 1.5 * r["low"]:
            print("     (note: repeats disagree by more than 1.5x; the machine's timings are "
                  "noisy, trust the median and the op count)")

        step_ops, bare_ops = ops_per_step(case)
        print(f"     ATen ops dispatched        {step_ops:9.0f} per step vs {bare_ops} per bare "
              "forward+backward")
        print("  2. attribute() with default settings")
        print("     batch   seconds    examples/s   steps (median [min-max])")
        for row in throughput(case, reps):
            print(f"     {row['n']:5d}  {row['seconds']:8.3f}   {row['per_s']:10.1f}   "
                  f"{row['steps']:6.1f} [{row['min_steps']}-{row['max_steps']}]")

        v = versus_ig(case, reps)
        ig_name = "IntegratedGradients" if name == "cnn" else "LayerIntegratedGradients"
        print(f"  3. vs Captum {ig_name}(n_steps=50), batch {REPORT_BATCH}")
        print(f"     attribute() defaults {v['ours_s'] * 1e3:9.1f} ms, "
              f"IG {v['ig_s'] * 1e3:9.1f} ms, ratio {v['ratio']:6.2f}")
        summary.append((name, r["ratio"], v["ratio"]))

        if args.profile:
            print(f"  profile: one attribute() call, batch {REPORT_BATCH}, "
                  f"{reps.extra_steps} steps, no checks")
            print(profile(case, reps.extra_steps, 25))

    print()
    print("summary")
    for name, ratio, ig_ratio in summary:
        verdict = "OK" if ratio <= STEP_RATIO_GOAL else "ABOVE GOAL"
        print(f"  {name:5s} step ratio {ratio:5.2f} (goal <= {STEP_RATIO_GOAL}, {verdict}); "
              f"time vs IG(50) {ig_ratio:5.2f}x")
    print(f"total benchmark time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
