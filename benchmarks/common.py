"""What every benchmark shares: its command line, the results table, the JSON file, peak memory.

A benchmark script builds a list of ``Result`` rows (pagecat and its peers, measured in the
same run on the same input) and hands them to ``report``::

    args = parse_args("extract", "Main-text quality and speed against trafilatura and resiliparse")
    results = [Result("pagecat", "scrapinghub", "f1", 0.91), Result("trafilatura", ...)]
    report("extract", results, args, ratios=[("pagecat", "trafilatura", "pages_per_s")])

It prints a table (and the ratios asked for), and with ``--json FILE`` writes
``{"benchmark": name, "results": [{"system", "dataset", "metric", "value", "unit"}, ...]}``.
``--quick`` asks the script for a version that ends within a minute.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass
class Result:
    system: str          # "pagecat" or the peer's name
    dataset: str
    metric: str
    value: float
    unit: str = ""


def parse_args(name: str, description: str, extra=None) -> argparse.Namespace:
    """The common flags (``--quick``, ``--json FILE``, ``--data DIR``) plus any ``extra(parser)`` adds."""
    p = argparse.ArgumentParser(prog=f"benchmarks/{name}.py", description=description)
    p.add_argument("--quick", action="store_true", help="a smaller run that ends within a minute")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    p.add_argument("--data", default=str(SHARED_DATA), help="the shared data folder (default: ../shared/data)")
    if extra is not None:
        extra(p)
    args = p.parse_args()
    if not Path(args.data).is_dir():
        p.exit(2, f"{p.prog}: error: data folder {args.data} not found; pass --data DIR\n")
    return args


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory of this process (or of its finished children), in MB."""
    if not children:
        return own_peak_rss_mb()
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def own_peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM), in MB; what a Dask worker's is (``client.run``).

    Not ru_maxrss: a process started by fork + exec (a subprocess, a Dask worker) inherits its
    parent's high-water mark there, so a worker started by a benchmark holding a corpus would
    report the benchmark's peak. ru_maxrss only where /proc is not there."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds`` (wall clock)."""

    def __enter__(self) -> Timer:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._t0


def _value(results: list[Result], system: str, dataset: str, metric: str) -> float | None:
    for r in results:
        if (r.system, r.dataset, r.metric) == (system, dataset, metric):
            return r.value
    return None


def report(name: str, results: list[Result], args: argparse.Namespace,
           ratios: list[tuple[str, str, str]] = ()) -> None:
    """Print the table and the ratios ``(system, peer, metric)`` per dataset; write ``--json``."""
    width = max([len(r.system) for r in results] + [6])
    dwidth = max([len(r.dataset) for r in results] + [7])
    mwidth = max([len(r.metric) for r in results] + [6])
    print(f"\n{name}")
    print(f"{'system':<{width}}  {'dataset':<{dwidth}}  {'metric':<{mwidth}}  {'value':>12}  unit")
    for r in results:
        print(f"{r.system:<{width}}  {r.dataset:<{dwidth}}  {r.metric:<{mwidth}}  {r.value:>12.4g}  {r.unit}")
    for system, peer, metric in ratios:
        for dataset in dict.fromkeys(r.dataset for r in results):
            a, b = _value(results, system, dataset, metric), _value(results, peer, dataset, metric)
            if a is not None and b:
                print(f"ratio {system}/{peer} {metric} on {dataset}: {a / b:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"benchmark": name, "results": [asdict(r) for r in results]},
                                              indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
