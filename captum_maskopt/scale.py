"""Run the jobs of a long explanation on a Ray cluster (the ``[scale]`` extra).

An explanation costs hundreds of forward and backward passes per example, so a data
set outgrows one machine. :func:`map_on_ray` hands a list of jobs (a batch of texts
to explain, a batch of a comparison to score) to a Ray Data pipeline: the jobs become
a dataset, ``map_batches`` runs them on a pool of actors, each of which builds its
worker (loads the model) once, and the results stream back to the caller in the
jobs' order, so the caller writes them to its resumable file as they come.

Ray restarts an actor that dies and runs its job again (Ray Data's actor pools retry
without limit), so every job's result arrives exactly once; the caller's file skips
the jobs an earlier run finished. Jobs and results travel pickled, so any Python
value a job holds (a text that is not a string, say) comes back as it went.

The local engine (a loop in the caller's process) stays the default and needs no Ray.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Tuple

import numpy as np

__all__ = ["ENGINES", "RayOptions", "map_on_ray", "to_worker_device"]

ENGINES: Tuple[str, ...] = ("local", "ray")
"""The engines a data-set explanation runs on: ``"local"`` (this process, the
default) or ``"ray"`` (a Ray cluster, see :func:`map_on_ray`)."""

Worker = Callable[[Any], Any]
"""A function from one job to its result, built once per actor."""


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide the Ray engine runs.

    Attributes:
        address: the cluster to join (``"auto"``: the one this machine belongs to, or
            ``"ray://host:10001"``); None starts a local Ray on this machine when none
            is running, and stops it when done.
        workers: actors in the pool, each with its own copy of the model.
        cpus_per_worker: CPU cores Ray reserves for each actor (also its torch
            threads).
        gpus_per_worker: GPUs for each actor; a fraction (0.5) puts several actors on
            one GPU. With a GPU the model runs there.
    """

    address: Optional[str] = None
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {self.workers!r}")
        if not self.cpus_per_worker > 0:
            raise ValueError(f"cpus_per_worker must be > 0, got {self.cpus_per_worker!r}")
        if not self.gpus_per_worker >= 0:
            raise ValueError(f"gpus_per_worker must be >= 0, got {self.gpus_per_worker!r}")


def to_worker_device(model: Any) -> None:
    """Move ``model`` (an ``nn.Module``) to the GPU of this Ray actor, if Ray gave it
    one (Ray hides the GPUs an actor did not ask for, so a CPU actor stays on the CPU)."""
    import torch

    if torch.cuda.is_available():
        model.to("cuda")


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data is a part of the ray[data] install)
    except ImportError as error:
        raise ImportError(
            "the Ray engine needs Ray Data: pip install 'captum-maskopt[scale]'"
        ) from error
    return ray


class _JobRunner:
    """A Ray Data actor: builds the worker once, then runs the jobs of each batch."""

    def __init__(self, make_worker: Callable[[], Worker], cpus: float) -> None:
        import torch

        torch.set_num_threads(max(1, int(cpus)))
        self.worker = make_worker()

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        results = [pickle.dumps(self.worker(pickle.loads(job))) for job in batch["job"]]
        return {"index": batch["index"], "result": np.array(results, dtype=object)}


def map_on_ray(
    make_worker: Callable[[], Worker], jobs: Sequence[Any], options: RayOptions = RayOptions(),
) -> Iterator[Any]:
    """The results of ``worker(job)`` for each of ``jobs``, in the jobs' order, each
    one as soon as it and those before it are done.

    Args:
        make_worker: a picklable function, called once in each actor, that returns
            the worker (so the model is loaded once per actor, on its GPU if it has
            one).
        jobs: picklable jobs; each runs on one actor as one Ray Data batch.
        options: the cluster and the pool, see :class:`RayOptions`.

    Raises:
        ImportError: when Ray Data is not installed.
    """
    ray = _import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=options.address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    context = ray.data.DataContext.get_current()
    kept_order, kept_progress = context.execution_options.preserve_order, context.enable_progress_bars
    # Results come back in the jobs' order, so the caller's file is in input order.
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    try:
        if not jobs:
            return
        items = [{"index": index, "job": pickle.dumps(job)} for index, job in enumerate(jobs)]
        # One block per job, so that every idle actor can take the next job.
        dataset = ray.data.from_items(items, override_num_blocks=len(items))
        results = dataset.map_batches(
            _JobRunner, batch_size=1, batch_format="numpy",
            fn_constructor_args=(make_worker, options.cpus_per_worker),
            # A job is seconds to minutes of work: an actor takes the next one only when
            # it is free, so the pool stays balanced and a dying actor loses one job.
            compute=ray.data.ActorPoolStrategy(size=options.workers, max_tasks_in_flight_per_actor=1),
            num_cpus=options.cpus_per_worker, num_gpus=options.gpus_per_worker or None,
        )
        expected = 0
        for row in results.iter_rows():
            if int(row["index"]) != expected:
                raise RuntimeError(f"Ray returned job {row['index']} where job {expected} was due")
            expected += 1
            yield pickle.loads(row["result"])
        if expected != len(jobs):
            raise RuntimeError(f"Ray returned {expected} of {len(jobs)} job results")
    finally:
        context.execution_options.preserve_order = kept_order
        context.enable_progress_bars = kept_progress
        if started_here:
            ray.shutdown()
