"""``pagecat demo``: the whole pipeline on the bundled WebKB sample, with no network.

The sample's pages are served by a replay proxy on 127.0.0.1 that answers each original URL
(http://www.cs.cornell.edu/...) with the archived 1997 response and 404 for anything else.
The crawler fetches through it, each sample page a seed (like one business of a directory),
following same-site links to depth 1; then parse, dedup, label (one university held back as
untagged), features, train, predict and report run as they would on any other data.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
import time
from collections import defaultdict
from pathlib import Path

from pagecat.config import config_from_dict, deep_merge, read_config_file
from pagecat.errors import UsageError
from pagecat.pipeline import Pipeline


def demo_defaults(run_dir: str, seeds: str, labels: str, proxy: str, holdout: str) -> dict:
    """The demo's settings; a config file and ``--set`` still override any of them."""
    return {
        "run": {"dir": run_dir},
        "crawl": {"seeds": seeds, "proxy": proxy, "max_depth": 1, "max_pages_per_site": 5,
                  "concurrency": 64, "per_host_concurrency": 16, "timeout_total": 15.0, "retries": 1,
                  "user_agent": "pagecat-demo/0.1"},
        "label": {"labels": labels, "join_on": "url", "group_column": "university",
                  "holdout_column": "university", "holdout_value": holdout},
        "train": {"models": ["xgboost", "linear"], "xgboost": {"n_estimators": 200}},
        "report": {"title": f"pagecat demo: WebKB pages, {holdout} held back as untagged"},
    }


def stratified_subset(records: list[dict], n: int, seed: int = 0) -> list[dict]:
    """``n`` records with the label shares of ``records`` (at least one of each label)."""
    if n >= len(records):
        return records
    by_label: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_label[r["label"]].append(r)
    rng = random.Random(seed)
    out = []
    for label in sorted(by_label):
        group = by_label[label]
        out.extend(rng.sample(group, max(1, round(n * len(group) / len(records)))))
    return sorted(out, key=lambda r: r["url"])


def _write_if_changed(path: Path, text: str) -> None:
    """Keep an unchanged input file untouched, so a re-run sees the same fingerprint."""
    if path.is_file() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_demo_inputs(records: list[dict], folder: Path) -> tuple[Path, Path]:
    """seeds.csv (url_id, url) and labels.csv (url, label, university) for the sample."""
    seeds = [{"url_id": hashlib.sha1(r["url"].encode()).hexdigest()[:12], "url": r["url"]} for r in records]
    _write_if_changed(folder / "seeds.csv", _csv(seeds, ["url_id", "url"]))
    _write_if_changed(folder / "labels.csv", _csv(records, ["url", "label", "university"]))
    return folder / "seeds.csv", folder / "labels.csv"


def run_demo(run_dir: str = "runs/demo", pages: int | None = None, holdout: str = "cornell",
             config_path: str | None = None, overrides: dict | None = None, client=None) -> Path:
    """Run the demo end to end; returns the report's path. ``client``: an existing Dask client."""
    from pagecat.data.webkb import load_sample
    from pagecat.etl.crawl.replay import ReplayProxy

    t0 = time.perf_counter()
    records = load_sample()
    universities = sorted({r["university"] for r in records})
    if holdout not in universities:
        raise UsageError(f"--holdout {holdout}: not a university group of the sample; "
                         f"choose from {', '.join(universities)}")
    if pages is not None:
        if pages < 20:
            raise UsageError(f"--pages {pages}: too few to train on; use at least 20")
        records = stratified_subset(records, pages)
    run_path = Path(run_dir)
    seeds, labels = write_demo_inputs(records, run_path / "inputs")
    print(f"demo: {len(records)} WebKB pages from {len(universities)} university groups; "
          f"{holdout} held back as untagged")

    with ReplayProxy(records) as proxy:
        print(f"demo: replay proxy on {proxy.url} serves the archived pages; nothing leaves this machine")
        defaults = demo_defaults(str(run_path), str(seeds), str(labels), proxy.url, holdout)
        data = deep_merge(defaults, read_config_file(config_path) if config_path else {})
        cfg = config_from_dict(deep_merge(data, overrides or {}))
        with Pipeline(cfg, client=client) as pipeline:
            pipeline.run()
    report = Path(cfg.run.dir) / "report.html"
    print(f"demo: finished in {time.perf_counter() - t0:.1f}s; report: {report.resolve()}")
    return report
