"""parse, deepened: page fields, partitioned storage, crawl-log fields and the hard bad inputs."""

from __future__ import annotations

import time

import pytest
from test_parse import pages_of, rejects_of, run_parse, write_warc

from pagecat.config import config_from_dict
from pagecat.data.webkb import load_sample
from pagecat.errors import UsageError
from pagecat.etl.parse.decode import decode_html
from pagecat.etl.parse.extract import HtmlExtractor, max_depth_estimate
from pagecat.etl.parse.lang import detect_language
from pagecat.etl.parse.writer import domain_bucket

WORDS = " ".join(f"word{i}" for i in range(40))


# -- fields ------------------------------------------------------------------------------

ARTICLE = """<!DOCTYPE html><html lang="en-GB"><head><title>Tide tables | Harbour Office</title>
<meta name="Description" content="  When the  tide turns in the harbour. ">
<link rel="canonical" href="/tides/today"></head><body>
<nav><a href="/">Home</a> <a href="/tides">Tides</a> <a href="#top">Top</a> <a href="javascript:void(0)">x</a></nav>
<article><h1>Tide tables for the harbour</h1>
<p>The harbour office publishes the tide tables every morning, and the boats leave on the high water.</p>
<p>Each table lists the height of the water, the time of the turn, and the strength of the current at the mouth.</p>
<h2>How to read them</h2><p>Read the columns from left to right, and mind the daylight saving time in summer.</p>
</article><footer><a href="mailto:office@example.org">Mail</a> <a href="/about">About</a></footer></body></html>"""


def test_page_fields_and_crawl_log_fields(tmp_path):
    recs = [{"url": "http://www.Harbour.example.co.uk/tides/index.html?day=1", "body": ARTICLE.encode(),
             "warc_headers": {"WARC-Pagecat-Seed-Id": "s%201", "WARC-Pagecat-Depth": "1",
                              "WARC-Pagecat-Rank": "3", "WARC-Pagecat-Link-Text": "Tide%20tables%20%E2%80%94"}}]
    offsets = write_warc(tmp_path / "a.warc.gz", recs)
    run, counts = run_parse(tmp_path, [str(tmp_path / "a.warc.gz")])
    assert counts == {"in": 1, "out": 1, "rejected": 0, "dropped": 0}
    (p,) = pages_of(run)
    assert p["canonical_url"] == "http://www.harbour.example.co.uk/tides/today"
    assert p["path"] == "/tides/index.html" and p["domain"] == "example.co.uk"
    assert p["description"] == "When the tide turns in the harbour."
    assert p["title"] == "Tide tables | Harbour Office"
    assert p["headings"] == ["Tide tables for the harbour", "How to read them"]
    assert p["language"] == "en"
    assert p["outlinks"] == 3  # /, /tides, /about: not #top, javascript:, mailto:
    assert (p["seed_id"], p["depth"], p["rank"], p["link_text"]) == ("s 1", 1, 3, "Tide tables —")
    assert p["source_offset"] == offsets[0]
    lines = p["text"].split("\n")
    assert lines[0] == "Tide tables for the harbour" and "How to read them" in lines
    assert "Home" not in lines and "About" not in p["text"]
    # full_text keeps everything visible, furniture included, on one line.
    assert "Home Tides Top" in p["full_text"] and "Mail About" in p["full_text"] and "\n" not in p["full_text"]


def test_language_guess():
    assert detect_language("Die Gezeiten werden jeden Morgen veröffentlicht, und die Boote fahren mit dem "
                           "Hochwasser aus, wenn es die Zeit erlaubt und der Wind nicht zu stark ist.") == "de"
    assert detect_language("Les horaires des marées sont publiés chaque matin et les bateaux partent avec la "
                           "marée haute pour la pêche du jour dans le port.") == "fr"
    assert detect_language("Расписание приливов публикуется каждое утро, и лодки уходят на большой воде, "
                           "когда это позволяет погода.") == "ru"
    assert detect_language("潮汐表每天早上公布，船只在高潮时出发。港口办公室负责发布。") == "zh"
    assert detect_language("東京の港では毎朝、潮の時刻表が発表されます。") == "ja"
    assert detect_language("short") is None and detect_language("") is None


def test_business_home_page_and_list_page_are_not_empty():
    home = """<html><body><header class="site-header"><a href="/">ACME</a></header>
    <div class="hero"><h1>Industrial pumps since 1952</h1><h2>Built in Ohio</h2></div>
    <div class="grid"><div class="card"><h3>Centrifugal pumps</h3><span>For water and light oils</span></div>
    <div class="card"><h3>Piston pumps</h3><span>For high pressure</span></div>
    <div class="card"><h3>Service</h3><span>24 hour repairs</span></div></div>
    <div id="cookie-consent">We use cookies to improve your experience. <a href="/privacy">Privacy</a></div>
    <footer>© ACME Pumps · Terms · Privacy</footer></body></html>"""
    out = HtmlExtractor().extract(home)
    lines = out.text.split("\n")
    for want in ("Industrial pumps since 1952", "Built in Ohio", "Centrifugal pumps", "For water and light oils",
                 "Piston pumps", "24 hour repairs"):
        assert want in lines, want
    assert "cookies" not in out.text and "Terms" not in out.text and "ACME" not in lines
    courses = "<html><body><h1>Courses</h1><ul>" + "".join(
        f"<li><a href='/c/{i}'>CS {i} Topic number {i}</a></li>" for i in range(100, 110)) + "</ul></body></html>"
    text = HtmlExtractor().extract(courses).text
    assert text.split("\n")[:3] == ["Courses", "CS 100 Topic number 100", "CS 101 Topic number 101"]


def test_article_among_boilerplate_keeps_the_article_only(tmp_path):
    paragraphs = "".join(f"<p>Paragraph {i} of the story, with a clause, another clause, and more words to read "
                         f"about the harbour and its boats.</p>" for i in range(8))
    menu = "".join(f"<a href=/x{i}>Link {i}</a>" for i in range(30))
    rail = "".join(f"<div><a href=/r{i}>Other story {i}</a></div>" for i in range(10))
    html = (f"<html><body><div class='menu-top'>{menu}</div>"
            f"<div class='layout'><div class='story-body'>{paragraphs}</div>"
            f"<div class='rail'><h3>Most read</h3>{rail}"
            f"</div></div><div class='comments'><p>First! Great story, really.</p></div></body></html>")
    out = HtmlExtractor().extract(html)
    assert out.text.count("Paragraph") == 8
    assert "Link 3" not in out.text and "Other story" not in out.text and "First!" not in out.text


# -- storage -----------------------------------------------------------------------------

def test_domain_bucket_partitioning_and_part_names(tmp_path):
    sample = load_sample()[:40]
    from pagecat.data.webkb import split_http_response

    recs = []
    for p in sample:
        headers, body = split_http_response(p["raw"])
        recs.append({"url": p["url"], "body": body})
    write_warc(tmp_path / "a.warc.gz", recs[:20])
    write_warc(tmp_path / "b.warc.gz", recs[20:])
    run, counts = run_parse(tmp_path, [str(tmp_path / "a.warc.gz"), str(tmp_path / "b.warc.gz")],
                            partition_by="domain_bucket", buckets=4, batch_rows=3, row_group_rows=2)
    files = run.list_files("pages", suffix=".parquet")
    assert files and all("/bucket=" in f for f in files)
    names = [run.part_name("pages", f) for f in files]
    assert len(set(names)) == len(names) and all(n.startswith("bucket=") and "__part-0000" in n for n in names)
    pages = pages_of(run)
    assert len(pages) == counts["out"] >= 35
    for f in files:
        bucket = f.split("bucket=")[1].split("/")[0]
        assert all(domain_bucket(d, 4) == bucket for d in run.read_part(f, columns=["domain"])["domain"].to_pylist())
    # Row groups are bounded; a re-run of the same parts overwrites, never duplicates.
    import pyarrow.parquet as pq

    assert max(pq.ParquetFile(f).metadata.num_rows_per_row_group(0) if hasattr(pq.ParquetFile(f).metadata,
               "num_rows_per_row_group") else pq.ParquetFile(f).metadata.row_group(0).num_rows for f in files) <= 2
    run2, _ = run_parse(tmp_path, [str(tmp_path / "a.warc.gz"), str(tmp_path / "b.warc.gz")],
                        partition_by="domain_bucket", buckets=4, batch_rows=3, row_group_rows=2)
    assert len(pages_of(run2)) == len(pages)


def test_partition_config_is_checked(tmp_path):
    with pytest.raises(UsageError, match="parse.partition_by"):
        config_from_dict({"parse": {"partition_by": "host"}})
    (tmp_path / "x.csv").write_text("text\nsome words in a row\n")
    with pytest.raises(UsageError, match="parse.buckets"):
        run_parse(tmp_path, [str(tmp_path / "x.csv")], buckets=0)


# -- bad input ---------------------------------------------------------------------------

def test_corrupt_record_among_good_ones_keeps_the_records_after_it(tmp_path):
    recs = [{"url": f"http://a.example/{i}", "body": f"<p>{WORDS} page {i}</p>".encode()} for i in range(5)]
    offsets = write_warc(tmp_path / "w.warc.gz", recs)
    data = bytearray((tmp_path / "w.warc.gz").read_bytes())
    mid = (offsets[2] + offsets[3]) // 2
    data[mid:mid + 40] = b"\xff" * 40  # garble the compressed bytes of record 2
    (tmp_path / "w.warc.gz").write_bytes(bytes(data))
    run, counts = run_parse(tmp_path, [str(tmp_path / "w.warc.gz")])
    assert [p["url"] for p in pages_of(run)] == [r["url"] for i, r in enumerate(recs) if i != 2]
    (rej,) = rejects_of(run)
    assert rej["reason"].startswith("unreadable_record") and rej["source"].endswith(f"#{offsets[2]}")
    assert counts == {"in": 5, "out": 4, "rejected": 1, "dropped": 0}


def test_binary_served_as_html_and_wrong_charset(tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20
    noise = bytes((i * 37 + 11) % 32 for i in range(3000))  # control bytes, no magic number
    text = "Привет, это страница о приливах и отливах в гавани, и о лодках, которые выходят в море."
    recs = [{"url": "http://a.example/logo", "body": png},
            {"url": "http://a.example/noise", "body": noise},
            {"url": "http://a.example/ru", "headers": [("Content-Type", "text/html; charset=iso-8859-1")],
             "body": f"<html><body><p>{text}</p></body></html>".encode()}]
    write_warc(tmp_path / "w.warc.gz", recs)
    run, counts = run_parse(tmp_path, [str(tmp_path / "w.warc.gz")])
    reasons = {r["record"]: r["reason"] for r in rejects_of(run)}
    assert reasons == {"http://a.example/logo": "not_html (binary served as text/html)",
                       "http://a.example/noise": "not_html (binary served as text/html)"}
    (ru,) = pages_of(run)
    assert ru["text"] == text and ru["language"] == "ru"  # UTF-8 bytes declared latin-1: read as UTF-8
    assert decode_html("naïve".encode("cp1252"), "text/html; charset=iso-8859-1")[0] == "naïve"


def test_deep_nesting_is_a_reject_not_a_hang(tmp_path):
    deep = "<html><body>" + "<div>" * 100_000 + "deep text " * 10 + "</div>" * 100_000 + "</body></html>"
    assert max_depth_estimate(deep) >= 3000 and max_depth_estimate(ARTICLE) < 10
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "deep.html").write_text(deep)
    (tmp_path / "site" / "ok.html").write_text(ARTICLE)
    t0 = time.perf_counter()
    run, counts = run_parse(tmp_path, [str(tmp_path / "site")])
    assert time.perf_counter() - t0 < 10
    assert counts == {"in": 2, "out": 1, "rejected": 1, "dropped": 0}
    assert rejects_of(run)[0]["reason"] == "too_deep (tags nested over 3000 levels)"
    # Deep but within bounds: extracted.
    assert HtmlExtractor().extract("<div>" * 2000 + "still here" + "</div>" * 2000).text == "still here"


def test_entities_are_not_expanded_and_nothing_is_fetched():
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
            '<!ENTITY xxe SYSTEM "file:///etc/passwd">'
            '<!ENTITY ext SYSTEM "http://127.0.0.1:9/evil.dtd">]>'
            '<html><body><p>before &lol2; &xxe; &ext; after &amp; &eacute;</p></body></html>')
    out = HtmlExtractor().extract(bomb)
    assert "before &lol2; &xxe; &ext; after & é" in out.text
    assert "lollol" not in out.text and "root:" not in out.text


def test_fifty_megabyte_page_is_cut_and_parsed(tmp_path):
    para = "<p>" + "tide table words, " * 30 + "</p>"
    page = ("<html><body>" + para * (50_000_000 // len(para)) + "</body></html>").encode()
    assert len(page) >= 49_000_000
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "big.html").write_bytes(page)
    t0 = time.perf_counter()
    run, counts = run_parse(tmp_path, [str(tmp_path / "site")], max_html_bytes=5_000_000)
    assert time.perf_counter() - t0 < 30
    (p,) = pages_of(run)
    assert counts["out"] == 1 and 700_000 < p["word_count"] < 900_000  # the first 5 MB of it (~90 words / 550 B)


def test_zero_byte_html_and_table_inputs(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "empty.html").write_bytes(b"")
    (tmp_path / "t.jsonl").write_bytes(b"")
    (tmp_path / "t.csv").write_bytes(b"")
    run, counts = run_parse(tmp_path, [str(tmp_path / "site"), str(tmp_path / "t.jsonl"), str(tmp_path / "t.csv")])
    assert counts == {"in": 3, "out": 0, "rejected": 3, "dropped": 0}
    assert sorted(r["reason"] for r in rejects_of(run)) == ["empty_file: no rows", "empty_file: no rows", "empty_text"]
    assert len(run.list_files("pages", suffix=".parquet")) == 3  # each input part still has its output
    (tmp_path / "h.csv").write_text("id,body\n1,x\n")
    with pytest.raises(UsageError, match="h.csv: no column 'text'"):
        run_parse(tmp_path, [str(tmp_path / "h.csv")])
