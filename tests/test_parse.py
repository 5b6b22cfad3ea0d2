"""parse: readers, decoding, extraction and validation on real pages (WebKB, Common Crawl) and bad input."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pagecat.config import config_from_dict
from pagecat.data.webkb import load_sample, split_http_response
from pagecat.errors import UsageError
from pagecat.etl.parse import ParseStage
from pagecat.etl.parse.decode import decode_html
from pagecat.etl.parse.extract import HtmlExtractor
from pagecat.etl.parse.keys import count_words, sha1_hex, text_hash
from pagecat.runs import RunDir
from pagecat.schemas import PAGES, REJECTS

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CC_WARC = SHARED_DATA / "warc_samples" / "resiliparse_warcfile.warc.gz"


@pytest.fixture(scope="module")
def webkb():
    return load_sample()


def write_warc(path: Path, records: list[dict]) -> list[int]:
    """Write response records ({url, body, status?, headers?, warc_headers?}); returns their offsets."""
    offsets = []
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=True)
        for r in records:
            status = r.get("status", 200)
            http = StatusAndHeaders(f"{status} X", r.get("headers", [("Content-Type", "text/html")]),
                                    protocol="HTTP/1.0")
            offsets.append(f.tell())
            w.write_record(w.create_warc_record(r["url"], "response", payload=io.BytesIO(r["body"]),
                                                http_headers=http, warc_headers_dict=r.get("warc_headers", {})))
    return offsets


def webkb_records(pages: list[dict]) -> list[dict]:
    out = []
    for p in pages:
        headers, body = split_http_response(p["raw"])
        kept = [(k, v) for k, v in headers.items() if k.lower() not in ("content-length", "mime-version")]
        out.append({"url": p["url"], "body": body, "headers": kept or [("Content-Type", "text/html")]})
    return out


def run_parse(tmp_path: Path, inputs: list[str], **parse) -> tuple[RunDir, dict]:
    """check + plan + every part of the parse stage, directly (no cluster); returns summed counts."""
    cfg = config_from_dict({"parse": {"inputs": inputs, **parse}})
    run = RunDir(str(tmp_path / "run"))
    stage = ParseStage()
    stage.check(cfg, run)
    total = {"in": 0, "out": 0, "rejected": 0, "dropped": 0}
    for part in stage.plan(cfg, run):
        counts = stage.run_part(part, cfg, run)
        assert counts["in"] == counts["out"] + counts["rejected"] + counts["dropped"], part.id
        for k in total:
            total[k] += counts[k]
    return run, total


def pages_of(run: RunDir) -> list[dict]:
    return run.read_dataset("pages", schema=PAGES).to_pylist()


def rejects_of(run: RunDir) -> list[dict]:
    return run.read_dataset("rejects", "parse", schema=REJECTS).to_pylist()


# -- real pages --------------------------------------------------------------------------

def test_webkb_pages_from_a_warc(tmp_path, webkb):
    sample = webkb[:60]
    recs = webkb_records(sample)
    for i, r in enumerate(recs):
        r["warc_headers"] = {"WARC-Pagecat-Seed-Id": f"seed%20{i}", "WARC-Pagecat-Depth": str(i % 3)}
    offsets = write_warc(tmp_path / "webkb.warc.gz", recs)
    run, counts = run_parse(tmp_path, [str(tmp_path / "webkb.warc.gz")], batch_rows=7)

    pages = pages_of(run)
    assert counts["in"] == 60 and counts["out"] == len(pages) and counts["out"] + counts["rejected"] == 60
    assert counts["out"] >= 55
    by_url = {p["url"]: p for p in pages}
    for i, src in enumerate(sample):
        p = by_url.get(src["url"])
        if p is None:
            continue
        assert p["page_id"] == sha1_hex(src["url"])
        assert p["seed_id"] == f"seed {i}" and p["depth"] == i % 3
        assert p["source_offset"] == offsets[i]
        assert p["host"] == p["host"].lower() and p["host"] in p["url"].lower()
        assert p["word_count"] == count_words(p["text"]) >= 5
        assert p["text_hash"] == text_hash(p["text"])
    # The Berkeley page: upper-case host lower-cased, registered domain, title, text without markup.
    brass = by_url["http://HTTP.CS.Berkeley.EDU/Research/Projects/brass/"]
    assert brass["host"] == "http.cs.berkeley.edu" and brass["domain"] == "berkeley.edu"
    assert brass["title"] == "BRASS Research Group, U.C. Berkeley"
    assert "Computer Science Division, UC Berkeley" in brass["text"].split("\n") and "href" not in brass["text"]
    # The offset points at the record: reading there gives the same URL.
    with open(tmp_path / "webkb.warc.gz", "rb") as f:
        f.seek(pages[3]["source_offset"])
        rec = next(iter(ArchiveIterator(f)))
        assert rec.rec_headers.get_header("WARC-Target-URI") == pages[3]["url"]
    assert all(p["host"].endswith(p["domain"]) for p in pages)


def test_webkb_page_text_and_title(tmp_path, webkb):
    rec = next(r for r in webkb if r["url"].endswith("/~mccanne/"))
    headers, body = split_http_response(rec["raw"])
    html, _ = decode_html(body, headers.get("Content-type"))
    out = HtmlExtractor().extract(html)
    assert out.title == "Steven McCanne"
    lines = out.text.split("\n")
    assert "Assistant Professor" in lines
    assert any("Soda Hall" in line for line in lines)
    assert "<" not in out.text and "  " not in out.text


@pytest.mark.skipif(not CC_WARC.exists(), reason=f"shared Common Crawl sample not found at {CC_WARC}")
def test_common_crawl_warc(tmp_path):
    run, counts = run_parse(tmp_path, [str(CC_WARC)])
    assert counts["in"] == 16  # 16 response records; request/metadata/warcinfo are not pages
    assert counts["out"] + counts["rejected"] == 16
    pages = {p["url"]: p for p in pages_of(run)}
    ru = pages["http://01spb.ru/company/"]  # charset=windows-1251 in the HTTP header
    assert "компании" in ru["full_text"].lower() and "\ufffd" not in ru["full_text"]
    cn = pages["http://0760.jxtdw.com/area/sanxiang/"]  # charset=gb2312
    assert "招聘" in cn["title"] and cn["text"].count("\ufffd") < 5
    assert cn["domain"] == "jxtdw.com" and cn["host"] == "0760.jxtdw.com"
    assert all(p["http_status"] == 200 and p["fetched_at"].startswith("2020-08-08") for p in pages.values())


# -- extraction --------------------------------------------------------------------------

CONSTRUCTED = """<!DOCTYPE html><html><head><title>Lab of Quiet Machines</title>
<style>p { color: red }</style><script>var tracking = "SCRIPT_TEXT";</script></head>
<body class="page has-sidebar">
<header><a href="/">HEADER_LOGO</a></header>
<nav><ul><li>NAV_HOME</li><li>NAV_PEOPLE</li></ul></nav>
<div id="cookie-banner">COOKIE_TEXT we use cookies <button>Accept</button></div>
<div class="site-breadcrumbs">BREADCRUMB_TEXT</div>
<main><article>
<header><h1>Quiet machines for loud rooms</h1></header>
<p>We build acoustic dampers for   data centres, and   measure how quiet they get.</p>
<h2>Current projects</h2>
<ul><li>Passive foam arrays</li><li>Active noise cancelling for fans</li></ul>
<table><tr><td>Budget</td><td>120k</td></tr></table>
<!-- COMMENT_TEXT -->
</article></main>
<aside class="sidebar">SIDEBAR_TEXT</aside>
<div class="social-share">SHARE_TEXT</div>
<form><input value="FORM_VALUE"> Subscribe to FORM_TEXT</form>
<footer>FOOTER_TEXT copyright</footer>
</body></html>"""


def test_extraction_keeps_main_text_and_drops_furniture():
    out = HtmlExtractor().extract(CONSTRUCTED)
    assert out.title == "Lab of Quiet Machines"
    lines = out.text.split("\n")
    assert "Quiet machines for loud rooms" in lines  # an article's own header stays
    assert "We build acoustic dampers for data centres, and measure how quiet they get." in lines
    assert "Current projects" in lines and "Passive foam arrays" in lines
    assert "Active noise cancelling for fans" in lines and "Budget 120k" in lines
    for furniture in ("HEADER_LOGO", "NAV_HOME", "COOKIE_TEXT", "BREADCRUMB", "SIDEBAR", "SHARE_TEXT",
                      "FORM_TEXT", "FORM_VALUE", "FOOTER_TEXT", "SCRIPT_TEXT", "COMMENT_TEXT", "color"):
        assert furniture not in out.text, furniture


def test_extraction_never_empties_a_list_page_or_a_wrapped_page():
    only_nav = ("<html><body><nav><h2>Courses</h2><ul><li>CS 101 Intro</li><li>CS 202 Systems</li></ul></nav>"
                "</body></html>")
    assert HtmlExtractor().extract(only_nav).text == "Courses\nCS 101 Intro\nCS 202 Systems"
    # ASP.NET pages wrap the whole body in a <form>; Drupal puts "sidebar" words on wrappers.
    wrapped = ("<html><body><form id='aspnetForm'><div class='layout-with-sidebar'><h1>Title here</h1>"
               "<p>The real content of this page is here.</p></div></form></body></html>")
    assert HtmlExtractor().extract(wrapped).text == "Title here\nThe real content of this page is here."
    assert HtmlExtractor().extract("").text == "" and HtmlExtractor().extract("   ").text == ""


def test_decode_html_orders_and_fallbacks():
    text = "Café naïve — déjà vu"
    assert decode_html(text.encode("cp1252"), "text/html; charset=windows-1252") == (text, "cp1252")
    meta = f'<html><head><meta charset="windows-1251"></head><body>{"привет"}</body></html>'
    assert "привет" in decode_html(meta.encode("cp1251"))[0]
    equiv = '<meta http-equiv="Content-Type" content="text/html; charset=koi8-r"><p>мир</p>'
    assert "мир" in decode_html(equiv.encode("koi8_r"))[0]
    # A BOM wins over a wrong declaration.
    assert decode_html(b"\xef\xbb\xbf" + text.encode("utf-8"), "text/html; charset=iso-8859-1")[0] == text
    # Declared UTF-8 but the bytes are cp1252: no crash, the text comes back.
    assert decode_html(text.encode("cp1252"), "text/html; charset=utf-8") == (text, "cp1252")
    # Invalid bytes with nothing declared: no crash, replacement or fallback.
    assert "abc" in decode_html(b"abc \xff\xfe\x80 def")[0]
    # Unknown charset label: ignored.
    assert decode_html("ok é".encode(), "text/html; charset=x-no-such")[0] == "ok é"


# -- bad input ---------------------------------------------------------------------------

def test_truncated_gzip_warc_keeps_records_before_the_cut(tmp_path, webkb):
    recs = webkb_records(webkb[100:110])
    offsets = write_warc(tmp_path / "full.warc.gz", recs)
    data = (tmp_path / "full.warc.gz").read_bytes()
    cut = offsets[7] + (offsets[8] - offsets[7]) // 2  # the middle of the 8th record
    (tmp_path / "cut.warc.gz").write_bytes(data[:cut])
    run, counts = run_parse(tmp_path, [str(tmp_path / "cut.warc.gz")], min_words=1)

    assert counts == {"in": 8, "out": 7, "rejected": 1, "dropped": 0}
    assert [p["url"] for p in pages_of(run)] == [r["url"] for r in recs[:7]]
    (rej,) = rejects_of(run)
    assert rej["source"] == f"{tmp_path / 'cut.warc.gz'}#{offsets[7]}"
    assert rej["reason"].startswith("unreadable_record: truncated") and rej["record"] == recs[7]["url"]
    assert rej["stage"] == "parse"


def test_zero_byte_and_garbage_files_are_rejects_not_crashes(tmp_path):
    (tmp_path / "empty.warc.gz").write_bytes(b"")
    (tmp_path / "garbage.warc").write_bytes(b"this is not a WARC file at all\n\nreally not\n")
    (tmp_path / "notgzip.warc.gz").write_bytes(gzip.compress(b"WARC/1.0\r\nWARC-Type: response\r\n"))
    run, counts = run_parse(tmp_path, [str(tmp_path / n) for n in ("empty.warc.gz", "garbage.warc",
                                                                    "notgzip.warc.gz")])
    assert counts["out"] == 0 and counts["in"] == counts["rejected"] == 3
    reasons = sorted(r["reason"] for r in rejects_of(run))
    assert reasons[0] == "empty_file: no WARC records"
    assert all(r.startswith("unreadable_record: ") for r in reasons[1:])
    assert pages_of(run) == [] and len(run.list_files("pages", suffix=".parquet")) == 3


def test_rejects_http_errors_non_html_and_pages_without_text(tmp_path):
    words = " ".join(f"word{i}" for i in range(20))
    recs = [
        {"url": "http://a.example/ok", "body": f"<p>{words}</p>".encode()},
        {"url": "http://a.example/missing", "status": 404, "body": f"<p>{words}</p>".encode()},
        {"url": "http://a.example/logo.png", "headers": [("Content-Type", "image/png")], "body": b"\x89PNG..."},
        {"url": "http://a.example/empty", "body": b"<html><body><script>x()</script></body></html>"},
        {"url": "http://a.example/short", "body": b"<p>just three words</p>"},
        {"url": "http://a.example/bin", "headers": [], "body": b"%PDF-1.4 binary"},
        {"url": "http://a.example/bad-utf8", "headers": [("Content-Type", "text/html; charset=utf-8")],
         "body": b"<p>caf\xe9 cr\xe8me br\xfbl\xe9e is a dessert served cold</p>"},
    ]
    write_warc(tmp_path / "mixed.warc.gz", recs)
    run, counts = run_parse(tmp_path, [str(tmp_path / "mixed.warc.gz")])
    assert counts == {"in": 7, "out": 2, "rejected": 5, "dropped": 0}
    reasons = {r["record"]: r["reason"] for r in rejects_of(run)}
    assert reasons == {"http://a.example/missing": "http_status_404",
                       "http://a.example/logo.png": "not_html (image/png)",
                       "http://a.example/empty": "empty_text",
                       "http://a.example/short": "too_few_words (3 < 5)",
                       "http://a.example/bin": "not_html (binary)"}
    bad = next(p for p in pages_of(run) if p["url"].endswith("bad-utf8"))
    assert bad["text"] == "café crème brûlée is a dessert served cold"


def test_csv_with_missing_text_column_is_a_usage_error(tmp_path):
    (tmp_path / "reviews.csv").write_text("id,body,stars\n1,great stuff here,5\n")
    with pytest.raises(UsageError) as e:
        run_parse(tmp_path, [str(tmp_path / "reviews.csv")])
    msg = str(e.value)
    assert "reviews.csv" in msg and "'text'" in msg and "'html'" in msg and "id, body, stars" in msg
    # Naming the column fixes it.
    run, counts = run_parse(tmp_path, [str(tmp_path / "reviews.csv")], text_column="body", min_words=1)
    assert counts["out"] == 1 and pages_of(run)[0]["text"] == "great stuff here"


def test_csv_broken_rows_are_rejected_and_rows_keep_their_numbers(tmp_path):
    text = ('text,label\n"first good review, with a comma and more words",pos\n'
            'broken,row,with,extra,fields\n"multi\nline review that is long enough",neg\n\n'
            'ok but short,neg\n')
    (tmp_path / "r.csv").write_text(text)
    run, counts = run_parse(tmp_path, [str(tmp_path / "r.csv")])
    assert counts == {"in": 4, "out": 2, "rejected": 2, "dropped": 0}
    pages = pages_of(run)
    src = str(tmp_path / "r.csv")
    assert [p["source_offset"] for p in pages] == [0, 2]
    assert pages[1]["text"] == "multi\nline review that is long enough"
    assert pages[0]["page_id"] == sha1_hex(f"{src}#0") and pages[0]["url"] is None and pages[0]["title"] is None
    reasons = {r["source"]: r["reason"] for r in rejects_of(run)}
    assert reasons == {f"{src}#1": "unreadable_record: csv row has 5 fields, header has 2",
                       f"{src}#3": "too_few_words (3 < 5)"}


def test_jsonl_and_parquet_tables_with_html_or_text(tmp_path):
    html = "<html><body><nav>Menu</nav><p>Entry number {i} has enough words to keep</p></body></html>"
    lines = [json.dumps({"url": f"http://t.example/{i}", "html": html.format(i=i)}) for i in range(3)]
    (tmp_path / "t.jsonl").write_text("\n".join([lines[0], "{not json", lines[1], "[1, 2]", lines[2]]) + "\n")
    pq.write_table(pa.table({"text": ["a parquet entry with six words", None], "extra": [1, 2]}),
                   tmp_path / "t.parquet")
    run, counts = run_parse(tmp_path, [str(tmp_path / "t.parquet"), str(tmp_path / "t.jsonl")])
    assert counts == {"in": 7, "out": 4, "rejected": 3, "dropped": 0}
    pages = pages_of(run)
    # Sorted inputs: t.jsonl is part-00000, t.parquet part-00001.
    assert [p["text"] for p in pages] == [f"Entry number {i} has enough words to keep" for i in range(3)] + [
        "a parquet entry with six words"]
    assert pages[0]["page_id"] == sha1_hex("http://t.example/0") and pages[0]["host"] == "t.example"
    assert [p["source_offset"] for p in pages] == [0, 2, 4, 0]
    assert sorted(r["reason"].split(":")[0] for r in rejects_of(run)) == [
        "empty_text", "unreadable_record", "unreadable_record"]


def test_html_folder_inputs(tmp_path, webkb):
    folder = tmp_path / "site"
    (folder / "sub").mkdir(parents=True)
    for i, rec in enumerate(webkb[200:205]):
        (folder / ("sub" if i % 2 else ".") / f"page{i}.html").write_bytes(rec["raw"])  # WebKB: headers + HTML
    (folder / "README.txt").write_text("not an input")
    run, counts = run_parse(tmp_path, [str(folder)])
    pages = pages_of(run)
    assert counts["in"] == 5 and counts["out"] == len(pages) >= 4
    assert len(run.list_files("pages", suffix=".parquet")) == 2  # one part per folder
    assert all(p["url"].startswith("file://") and p["host"] is None for p in pages)
    assert not any(p["text"].startswith("Date:") for p in pages)  # archived HTTP headers are not text


def test_input_errors_name_the_path_and_the_fix(tmp_path):
    with pytest.raises(UsageError, match=r"nope\.warc\.gz not found; fix the path"):
        run_parse(tmp_path, [str(tmp_path / "nope.warc.gz")])
    (tmp_path / "data.xlsx").write_bytes(b"x")
    with pytest.raises(UsageError, match=r"data\.xlsx is not a supported input; use WARC"):
        run_parse(tmp_path, [str(tmp_path / "data.xlsx")])
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "empty_dir" / "notes.txt").write_text("x")
    with pytest.raises(UsageError, match=r"folder .*empty_dir holds no usable file"):
        run_parse(tmp_path, [str(tmp_path / "empty_dir")])


def test_without_inputs_parse_reads_the_crawl_output(tmp_path, webkb):
    run = RunDir(str(tmp_path / "run"))
    run.makedirs("raw")
    write_warc(Path(run.path("raw", "shard-001.warc.gz")), webkb_records(webkb[:3]))
    write_warc(Path(run.path("raw", "shard-000.warc.gz")), webkb_records(webkb[3:5]))
    cfg = config_from_dict({})
    stage = ParseStage()
    assert stage.upstream_stages(cfg) == ("crawl",) and stage.external_inputs(cfg, run) == []
    parts = stage.plan(cfg, run)
    assert [p.id for p in parts] == ["part-00000", "part-00001"]
    assert parts[0].inputs[0].endswith("shard-000.warc.gz")
    assert stage.run_part(parts[1], cfg, run)["in"] == 3
    cfg2 = config_from_dict({"parse": {"inputs": ["x.warc"]}})
    assert stage.upstream_stages(cfg2) == () and stage.external_inputs(cfg2, run) == ["x.warc"]
