"""End to end: the demo on a smaller sample, its report checked against the predictions, and a
demo killed in the middle of a stage that finishes on the next run with nothing lost or doubled."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from lxml import html as lxml_html

from pagecat.demo import run_demo
from pagecat.runs import Manifest, RunDir
from pagecat.stages import STAGE_ORDER

pytestmark = pytest.mark.slow
PAGES = 300


def report_categories(report: Path) -> dict[str, int]:
    doc = lxml_html.fromstring(report.read_bytes())
    rows = doc.xpath('//*[@id="category-distribution"]//tr[@data-label]')
    return {r.get("data-label"): int(r.get("data-count")) for r in rows}


def check_run(run_dir: Path) -> None:
    """The contracts every finished demo run keeps."""
    run = RunDir(str(run_dir))
    manifests = {s: Manifest.load(run, s) for s in STAGE_ORDER}
    assert all(m.status == "complete" for m in manifests.values()), {s: m.status for s, m in manifests.items()}
    for name, m in manifests.items():
        c = m.counts
        assert c["in"] == c["out"] + c.get("rejected", 0) + c.get("dropped", 0), (name, c)

    log = run.read_dataset("crawl_log").to_pylist()
    keys = [(r["seed_id"], r["url"]) for r in log]
    assert len(keys) == len(set(keys)), "a URL has more than one final outcome for its site"
    assert {r["outcome"] for r in log} <= {"fetched", "failed", "skipped", "filtered"}
    fetched = [r["url"] for r in log if r["outcome"] == "fetched"]
    assert len(fetched) == len(set(fetched)), "a URL was fetched twice"
    assert manifests["parse"].counts["in"] == len(fetched)

    pages = run.read_dataset("pages")
    assert len(set(pages["page_id"].to_pylist())) == len(pages)
    docs = run.read_dataset("docs", manifests["label"].extra["docs_version"])
    untagged = {d for d, lab in zip(docs["doc_id"].to_pylist(), docs["label"].to_pylist()) if lab is None}
    preds = run.read_dataset("predictions")
    assert sorted(preds["doc_id"].to_pylist()) == sorted(untagged)

    counts = Counter(preds["label"].to_pylist())
    assert report_categories(run_dir / "report.html") == dict(counts)
    assert (run_dir / "report.pdf").read_bytes().startswith(b"%PDF")


def test_demo_end_to_end(tmp_path, client, capsys):
    report = run_demo(run_dir=str(tmp_path / "demo"), pages=PAGES, client=client)
    out = capsys.readouterr().out
    assert report.is_file()
    check_run(tmp_path / "demo")
    run = RunDir(str(tmp_path / "demo"))
    # the seeds were fetched through the replay proxy; links outside the archive were logged as 404s
    log = run.read_dataset("crawl_log").to_pylist()
    assert sum(r["outcome"] == "fetched" and r["depth"] == 0 for r in log) >= PAGES * 0.9
    assert any(r["outcome"] == "failed" and r["reason"] == "http_404" for r in log)
    comparison = json.loads((tmp_path / "demo" / "models" / "comparison.json").read_text())
    assert {m["name"] for m in comparison["models"]} == {"xgboost", "linear"}
    assert all(m["accuracy"] > 0.4 for m in comparison["models"])  # 7 classes: chance is far lower
    for stage in STAGE_ORDER:
        assert f"[{stage}] in=" in out
    # a second run changes nothing and skips every stage
    run_demo(run_dir=str(tmp_path / "demo"), pages=PAGES, client=client)
    assert capsys.readouterr().out.count("unchanged since") == len(STAGE_ORDER)


def test_demo_killed_mid_stage_resumes_without_loss_or_duplicates(tmp_path):
    run_dir = tmp_path / "demo"
    cmd = [sys.executable, "-m", "pagecat", "demo", "--pages", str(PAGES), "--run-dir", str(run_dir),
           "--workers", "2", "--set", "cluster.dashboard_address=:0", "--set", "crawl.shards=8",
           "--set", "crawl.delay=0.02"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    killed_in = None
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None and killed_in is None:
            for stage in STAGE_ORDER:
                p = run_dir / "manifests" / f"{stage}.json"
                try:
                    m = json.loads(p.read_text())
                except (OSError, ValueError):
                    continue
                if m["status"] == "running" and m["parts"]:
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed_in = stage
                    break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert killed_in is not None, "the demo finished before it could be interrupted"
    interrupted = json.loads((run_dir / "manifests" / f"{killed_in}.json").read_text())
    assert interrupted["status"] == "running"

    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"[{killed_in}] resuming:" in r.stdout
    done = json.loads((run_dir / "manifests" / f"{killed_in}.json").read_text())
    for part, counts in interrupted["parts"].items():
        assert done["parts"][part] == counts  # parts done before the kill were kept, not redone
    check_run(run_dir)
