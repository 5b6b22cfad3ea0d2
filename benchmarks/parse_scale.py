"""The parse stage at scale: throughput on 1 and 2 Dask workers, and each worker's peak memory.

Input: WARC files made by repeating real pages, each copy with a unique URL, written uncompressed
under a temporary folder (sizes below are WARC bytes on disk) and deleted afterwards. ``--source
all`` (default) interleaves the WebKB pages (the full archive in ``<data>/webkb`` when present,
else the bundled sample: small 1997 university pages) with the pages of the extraction gold sets
(ScrapingHub, CleanEval, Readability: large modern news and blog pages), so both page sizes are in
every file; ``--source webkb`` uses the WebKB pages only.

For each input size: the whole ``ParseStage`` (``execute``: plan, parts on the workers, Parquet
written, manifest) on a fresh ``LocalCluster`` of N single-threaded worker processes; then the
peak resident memory of each worker process (its own high-water mark, VmHWM). From the
one-worker rate, the hours one worker needs for a terabyte (and the same from each multi-worker
run, per worker).

    python benchmarks/parse_scale.py [--quick] [--sizes-gb 1,10] [--files 8] [--source all|webkb]
                                     [--json out.json]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a script (python benchmarks/<name>.py): the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import Result, Timer, own_peak_rss_mb, parse_args, report


def source_pages(data: Path, limit: int = 20_000, source: str = "all") -> list[tuple[str, bytes]]:
    """(url, html body) of real pages: WebKB, and with ``source="all"`` the gold-set pages among them."""
    from pagecat.data.webkb import load_sample, read_archive, split_http_response

    archive = data / "webkb" / "webkb_raw_html.tar.gz"
    records = read_archive(data / "webkb") if archive.exists() else load_sample()
    out = []
    for rec in records:
        _, body = split_http_response(rec["raw"])
        if body.strip():
            out.append((rec["url"], body))
        if len(out) >= limit:
            break
    if source == "all":
        gold = gold_pages(data)
        step = max(1, len(out) // max(1, len(gold)))
        for i, page in enumerate(gold):  # spread through the WebKB pages, so every file gets both kinds
            out.insert(min(len(out), i * (step + 1)), page)
    return out


def gold_pages(data: Path) -> list[tuple[str, bytes]]:
    """(url, UTF-8 html) of the extraction gold-set pages (the benchmark's own loaders)."""
    from benchmarks.extract import GOLD_SETS

    out = []
    for name, (folder, load) in GOLD_SETS.items():
        path = data / "extraction" / folder
        if path.exists():
            out += [(f"http://{name}.example/{key}", html.encode("utf-8")) for key, html, _ in load(path)]
    return out


def _record(url: str, body: bytes) -> bytes:
    http = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    head = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:{uuid.uuid4()}>\r\n"
            f"WARC-Date: 2026-01-01T00:00:00Z\r\nWARC-Target-URI: {url}\r\n"
            f"Content-Type: application/http; msgtype=response\r\nContent-Length: {len(http)}\r\n\r\n")
    return head.encode() + http + b"\r\n\r\n"


def write_warcs(folder: Path, pages: list[tuple[str, bytes]], total_bytes: int, files: int) -> tuple[int, int]:
    """``files`` WARC files of about ``total_bytes`` together; returns (records, bytes) written."""
    folder.mkdir(parents=True, exist_ok=True)
    per_file = total_bytes // files
    n = written = 0
    for f in range(files):
        size = 0
        with open(folder / f"copy-{f:03d}.warc", "wb") as out:
            while size < per_file:
                url, body = pages[n % len(pages)]
                rec = _record(f"{url}{'&' if '?' in url else '?'}copy={n}", body)
                out.write(rec)
                size += len(rec)
                n += 1
        written += size
    return n, written


def run_stage(inputs: Path, run_dir: Path, workers: int) -> tuple[float, dict, list[float]]:
    """Seconds, counts and each worker's peak RSS (VmHWM, MB) for one parse of ``inputs``."""
    from distributed import Client, LocalCluster

    from pagecat.config import config_from_dict
    from pagecat.etl.parse import ParseStage
    from pagecat.runs import RunDir
    from pagecat.stage import execute

    cfg = config_from_dict({"run": {"dir": str(run_dir)}, "parse": {"inputs": [str(inputs)]}})
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit="4GB") as cluster, Client(cluster) as client:
        with Timer() as t:
            manifest = execute(ParseStage(), cfg, RunDir(str(run_dir)), client, force=True, progress=False)
        peaks = list(client.run(own_peak_rss_mb).values())
    return t.seconds, manifest.counts, peaks


def main() -> None:
    def extra(p):
        p.add_argument("--sizes-gb", default="1,10", help="input sizes in GB (WARC bytes), comma-separated")
        p.add_argument("--source", default="all", choices=("all", "webkb"), help="which real pages to repeat")
        p.add_argument("--files", type=int, default=8, help="WARC files per input (the units of work)")
        p.add_argument("--tmp", default=None, help="folder for the generated WARCs (default: a temp dir)")

    args = parse_args("parse_scale", "parse throughput on 1 and 2 workers, peak memory per worker", extra)
    sizes = [0.1] if args.quick else [float(x) for x in args.sizes_gb.split(",")]
    files = 2 if args.quick else args.files
    pages = source_pages(Path(args.data), limit=3000 if args.quick else 20_000, source=args.source)
    print(f"{len(pages)} source pages, {sum(len(b) for _, b in pages) / 1e6:.0f} MB")
    results: list[Result] = []
    tmp = Path(tempfile.mkdtemp(prefix="pagecat-scale-", dir=args.tmp))
    try:
        for gb in sizes:
            name = f"{gb:g}GB"
            inputs = tmp / f"warc-{name}"
            t0 = time.perf_counter()
            n_records, n_bytes = write_warcs(inputs, pages, int(gb * 1e9), files)
            print(f"{name}: wrote {n_records} records, {n_bytes / 1e9:.2f} GB in {time.perf_counter() - t0:.0f}s")
            # Two workers on every size (memory must stay flat); one worker on the smallest (the rate ratio).
            for workers in ((1, 2) if gb == sizes[0] else (2,)):
                seconds, counts, peaks = run_stage(inputs, tmp / f"run-{name}-{workers}", workers)
                assert counts["in"] == n_records, counts
                label = f"{name} {workers}w"
                results += [Result("pagecat", label, "pages_per_s", counts["in"] / seconds, "pages/s"),
                            Result("pagecat", label, "mb_per_s", n_bytes / 1e6 / seconds, "MB/s"),
                            Result("pagecat", label, "peak_worker_mb", max(peaks), "MB")]
                # One worker's hours for a terabyte: the run's rate shared out over its workers.
                results.append(Result("pagecat", label, "hours_per_tb_per_worker",
                                      1e12 / (n_bytes / seconds / workers) / 3600, "h/TB"))
                print(f"{label}: {seconds:.0f}s, {counts['in'] / seconds:.0f} pages/s, "
                      f"peak worker RSS {max(peaks):.0f} MB", flush=True)
                shutil.rmtree(tmp / f"run-{name}-{workers}", ignore_errors=True)
            shutil.rmtree(inputs, ignore_errors=True)
        first = f"{sizes[0]:g}GB"
        one = next(r.value for r in results if r.dataset == f"{first} 1w" and r.metric == "pages_per_s")
        two = next(r.value for r in results if r.dataset == f"{first} 2w" and r.metric == "pages_per_s")
        results.append(Result("pagecat", first, "speedup_2w_over_1w", two / one, "x"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report("parse_scale", results, args)


if __name__ == "__main__":
    main()
