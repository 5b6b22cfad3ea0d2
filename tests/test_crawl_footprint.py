"""What keeps a crawl process lean: its tables are exact without pandas, and a shard crawl in
a process of its own never imports pandas or Dask."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pyarrow as pa

from pagecat.etl.crawl.segments import rows_table
from pagecat.schemas import CRAWL_LOG, REJECTS


def test_rows_table_matches_from_pylist():
    rows = [
        {"seed_id": "s1", "url": "http://a.example/ü?q=\"x\"\u2028", "outcome": "fetched", "reason": None,
         "status": 200, "bytes": 2**40, "truncated": True, "seconds": 0.1 + 0.2, "fetched_at": "2026-01-01T00:00:00Z",
         "depth": 0, "rank": 0, "referrer": None, "link_text": "Über uns\n\t\x00 \U0001f600", "warc_file": "raw/x",
         "warc_offset": 123},
        {"seed_id": "s1", "url": "mailto:x@y", "outcome": "filtered", "reason": "scheme", "status": 0, "bytes": 0,
         "truncated": False, "seconds": 0.0, "fetched_at": None, "depth": 1, "rank": 7, "referrer": "http://a/",
         "link_text": "", "warc_file": None, "warc_offset": None},
    ]
    table = rows_table(rows, CRAWL_LOG)
    assert table.schema.equals(CRAWL_LOG)
    assert table.equals(pa.Table.from_pylist(rows, schema=CRAWL_LOG))
    assert rows_table([], REJECTS).schema.equals(REJECTS)
    missing = rows_table([{"source": "seeds.csv", "stage": "crawl"}], REJECTS).to_pylist()
    assert missing == [{"source": "seeds.csv", "stage": "crawl", "reason": None, "record": None}]


SHARD = textwrap.dedent("""
    import json, sys
    from pagecat.config import config_from_dict
    from pagecat.etl.crawl.replay import BackgroundServer
    from pagecat.etl.crawl.shard import crawl_part
    from pagecat.runs import RunDir
    from aiohttp import web

    app = web.Application()
    app.router.add_get("/", lambda r: web.Response(
        text="<html><body>" + "".join(f'<a href="/p{i}">about {i}</a>' for i in range(8)) + "</body></html>",
        content_type="text/html"))
    app.router.add_get("/p{n}", lambda r: web.Response(text="<html><body>page</body></html>",
                                                       content_type="text/html"))
    with BackgroundServer(app) as server:
        cfg = config_from_dict({"run": {"dir": sys.argv[1]}, "crawl": {
            "urls": [server.url + "/"], "max_pages_per_site": 4, "allow_private": True, "segment_pages": 2}})
        counts = crawl_part(cfg, RunDir(cfg.run.dir), "shard-0000", 0, 1)
    print(json.dumps({"counts": counts, "pandas": "pandas" in sys.modules, "dask": "distributed" in sys.modules}))
""")


def test_a_shard_crawl_imports_neither_pandas_nor_dask(tmp_path):
    out = subprocess.run([sys.executable, "-c", SHARD, str(tmp_path / "run")], capture_output=True, text=True,
                         check=True, timeout=120)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["counts"]["out"] == 4 and r["counts"]["in"] == 9  # the home page, 3 more, 5 over the site's budget
    assert r["counts"]["skipped"] == 5
    assert not r["pandas"], "a crawl process imported pandas"
    assert not r["dask"], "a shard crawl outside Dask imported Dask"
