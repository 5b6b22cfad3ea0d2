"""Large temporaries reused in the heap while a dedup task runs, not mapped afresh each time (glibc).

Dask's nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_=65536``, so that freed memory goes
back to the OS at once. Setting it also pins glibc's mmap threshold at its 128 KiB default (it
no longer grows as large blocks are freed): every array above 128 KiB is a fresh mapping, zeroed
and page-faulted in on first touch, and unmapped when freed. The dedup tasks make many arrays
of megabytes (a batch's bytes, token and shingle hashes, band rows), so a worker spent nearly as
long in the kernel as in numpy (1.3 million page faults for 70,000 pages) and two workers on one
machine contended there.

``roomy_heap`` wraps a task: while one runs in the process, the mmap and trim thresholds are
raised so freed blocks are reused; when the last one ends, they are set back to the worker's
values, and glibc again hands the free top of the heap back to the OS at the next free (an
explicit ``malloc_trim`` there cost twice the page faults, each task faulting its heap in anew,
for no lower peak). It acts only where such a variable pins the thresholds (elsewhere glibc
adapts on its own) and only on glibc; anywhere else it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import threading

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
TASK_MMAP_THRESHOLD = 64 << 20  # blocks below this come from the heap during a task
TASK_TRIM_THRESHOLD = 256 << 20  # free heap top kept during a task
GLIBC_DEFAULT_THRESHOLD = 128 << 10  # glibc's default for both

_lock = threading.Lock()
_running = 0


@functools.lru_cache(maxsize=1)
def _libc():
    """glibc's mallopt, or None (another C library, or no variable pins the thresholds)."""
    if not any(v in os.environ for v in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") else None
    except OSError:
        return None


def _worker_threshold(name: str) -> int:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        return GLIBC_DEFAULT_THRESHOLD


def roomy_heap(task):
    """Decorator: ``task`` runs with the raised thresholds (see the module's docstring)."""

    @functools.wraps(task)
    def wrapped(*args, **kwargs):
        global _running
        libc = _libc()
        if libc is None:
            return task(*args, **kwargs)
        with _lock:
            _running += 1
            if _running == 1:
                libc.mallopt(M_MMAP_THRESHOLD, TASK_MMAP_THRESHOLD)
                libc.mallopt(M_TRIM_THRESHOLD, TASK_TRIM_THRESHOLD)
        try:
            return task(*args, **kwargs)
        finally:
            with _lock:
                _running -= 1
                if _running == 0:
                    libc.mallopt(M_MMAP_THRESHOLD, _worker_threshold("MALLOC_MMAP_THRESHOLD_"))
                    libc.mallopt(M_TRIM_THRESHOLD, _worker_threshold("MALLOC_TRIM_THRESHOLD_"))

    return wrapped
