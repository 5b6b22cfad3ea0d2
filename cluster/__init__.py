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


# Dask's fine-grained diagnostics, and their settings under cluster.diagnostics=light. Each costs
# a little CPU all the time (the profiler samples every busy worker thread 100 times a second; each
# server's event loop wakes 50 times a second to time itself); on a machine whose cores all run
# workers, that time comes out of the tasks. Measured on 2 cores: ~5% of a worker's core while it
# works, and the dedup stage with 2 workers ~5% faster without them.
LIGHT_DIAGNOSTICS = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}
_dask_diagnostics: dict = {}  # the user's values that light diagnostics replaced


def set_diagnostics(level: str) -> None:
    """Dask's diagnostics for the clusters this process starts and the client it runs: ``light``
    (LIGHT_DIAGNOSTICS) or ``full`` (the values Dask had before, as the user configured it)."""
    import dask

    if level == "light":
        for key, value in LIGHT_DIAGNOSTICS.items():
            if dask.config.get(key) != value:
                _dask_diagnostics[key] = dask.config.get(key)
        dask.config.set(LIGHT_DIAGNOSTICS)
    elif _dask_diagnostics:
        dask.config.set(_dask_diagnostics)


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
    set_diagnostics(c.diagnostics)
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
        workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        print(f"dask: {workers} workers, dashboard {client.dashboard_link}")
    return client
