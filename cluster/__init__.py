"""Getting a Dask ``Client``: a LocalCluster sized to the machine, or an existing scheduler.

``connect(cfg)`` is the one way every entry point (CLI, notebooks, tests) gets a cluster.
"""

from __future__ import annotations

import os

from pagecat.config import Config
from pagecat.errors import UsageError


def local_cluster_size(n_workers: int | None, threads_per_worker: int) -> int:
    """Workers for a LocalCluster: one per core not shared by threads, at least one."""
    if n_workers:
        return n_workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, threads_per_worker))


def arrow_worker_pool() -> str | None:
    """The Arrow memory pool the workers of a LocalCluster use: ``jemalloc`` where pyarrow has it.

    Arrow's default on Linux is mimalloc, which faults its memory in as transparent huge pages,
    2 MB zeroed at once: on a machine whose cores share the memory bus, workers doing that side
    by side slow each other down. Measured on the dedup benchmark's stage (WebKB x8, 2 workers
    on 2 cores, best of 3, pools interleaved, two runs each): 1.86-1.90 s with jemalloc,
    2.02-2.11 s with the system pool, 2.12-2.15 s with mimalloc. None where pyarrow is built
    without jemalloc, or where ``ARROW_DEFAULT_MEMORY_POOL`` is set already (the user's choice
    stands)."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return None
    import pyarrow as pa

    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        return None
    return "jemalloc"


def connect(cfg: Config, *, quiet: bool = False):
    """A ``distributed.Client`` for ``cfg.cluster``; prints the dashboard address.

    Raises UsageError (exit 2) when a named scheduler cannot be reached.
    """
    import dask
    from distributed import Client, LocalCluster

    c = cfg.cluster
    # Parts are whole files: let a slow part run without the scheduler stealing or killing it.
    dask.config.set({"distributed.scheduler.work-stealing": False,
                     "distributed.worker.daemon": False,
                     "distributed.admin.system-monitor.gil.enabled": False})
    pool = arrow_worker_pool()
    if pool:  # read by pyarrow when it loads, so set before the workers start (see arrow_worker_pool)
        dask.config.set({"distributed.nanny.pre-spawn-environ.ARROW_DEFAULT_MEMORY_POOL": pool})
    if c.scheduler:
        try:
            client = Client(c.scheduler, timeout=c.connect_timeout)
        except (OSError, TimeoutError) as e:
            raise UsageError(f"cluster.scheduler {c.scheduler}: cannot connect ({type(e).__name__}); "
                             "start the scheduler or fix the address") from None
    else:
        cluster = LocalCluster(n_workers=local_cluster_size(c.n_workers, c.threads_per_worker),
                               threads_per_worker=c.threads_per_worker, memory_limit=c.memory_limit,
                               dashboard_address=c.dashboard_address, processes=True)
        client = Client(cluster)
    if not quiet:
        workers = len(client.scheduler_info().get("workers", {}))
        print(f"dask: {workers} workers, dashboard {client.dashboard_link}")
    return client
