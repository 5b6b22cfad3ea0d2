"""The compiled walk (etl/parse/_lexwalk.c): lexbor's struct layouts as it reads them, checked
against selectolax's own API on real pages, and its output against the pure-Python path."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import pytest
from selectolax.lexbor import LexborHTMLParser

from pagecat.etl.parse import extract
from pagecat.etl.parse.extract import HtmlExtractor, collapse, lines_of

RULE_ATTRIBUTES = ("class", "id", "href", "role", "hidden", "aria-hidden", "style", "itemprop", "name", "content",
                   "rel", "lang")
ELEMENT, TEXT = 1, 3

# Pages that reach each rule: furniture by tag, role, hidden markers, class/id words (ASCII and
# not, digits, content words), wrappers, article marks, nested links, captions, headings inside
# removed elements, tables, svg links, templates, custom tags, Unicode and ASCII control spaces.
SENTENCE = "The committee met on Tuesday, heard the reports, and voted on the budget for the coming year. "
EDGE_PAGES = [
    "",
    "   ",
    "<p>short</p>",
    "<frameset><frame src=a></frameset>",
    "<html lang=' de '><head><title> </title><title>Second\ttitle</title><meta name=' DESCRIPTION ' content=''>"
    "<meta name=description content=' a  b '><link rel='alternate CANONICAL' href='  /c  '></head><body>"
    f"<div class=ad2>{SENTENCE}</div><div id='comment-1234'>{SENTENCE}</div><article><header>By line</header>"
    f"<p>{SENTENCE * 3}</p><figure><img><figcaption>Photo credit</figcaption></figure><p>{SENTENCE * 2}</p>"
    "</article><aside role=complementary>aside</aside><div style='DISPLAY : none'>hidden</div>"
    "<div hidden>h</div><div aria-hidden=' TRUE '>h</div><nav><a href='/n'>n</a></nav></body></html>",
    f"<body class=sidebar><form><div class='article-body pagination-first'><p>{SENTENCE * 4}</p>"
    f"<p>{SENTENCE}</p></div></form><footer>f</footer></body>",
    # class values that are not ASCII go to the Python rules: the Kelvin sign lower-cases to k,
    # long s matches s under re.IGNORECASE
    f"<div class='\u212aeyword coo\u212aie'>{SENTENCE}</div><div class='\u017ftory'><p>{SENTENCE * 3}</p></div>"
    f"<div class='caf\u00e9 sidebar'>{SENTENCE}</div><div id='hid'><p>{SENTENCE * 2}</p></div>"
    f"<div class='x hid\n'><p>{SENTENCE * 2}</p></div>",
    f"<div><a href='  JavaScript:void(0)'>js</a><a href='\u00a0#top'>top</a><a href='mailto:x'>m</a>"
    f"<a href='https://e.com/'>{SENTENCE}<a href=/inner>inner</a></a><svg><a href='/svg'>s</a></svg>"
    f"<template><p>{SENTENCE}</p></template><my-widget class=content><p>{SENTENCE * 3}</p></my-widget></div>",
    f"<table><tr><th>Year</th><td>Budget,</td><td>{SENTENCE}</td></tr><tr><td><p>{SENTENCE * 3}</p></td></tr>"
    "</table><button><h2>Heading in a button</h2></button><h1> </h1><h3>Real\u3000heading</h3>",
    f"<div><span><p>{SENTENCE * 3}</p></span>tail<p>{SENTENCE}</p>\u200bzero\ufeffwidth\x1c\x1fcontrol</div>"
    f"<div>text\u00a0with\u2003spaces\u3001 and\uff0c commas\uff0c {SENTENCE * 3}</div>",
    f"<ul><li>{SENTENCE}</li><li>{SENTENCE}</li></ul><ol><li><a href=/a>{SENTENCE}</a></li></ol>"
    f"<div class='widget Blog'><div class='post-body entry-content'><p>{SENTENCE * 2}</p></div></div>"
    f"<p>{SENTENCE * 5}</p>",
    "<div>" * 2000 + SENTENCE * 4 + "</div>" * 2000,
    "<p>" + "a\x00b " * 50 + "</p><div>\r\n\x0b\x0c" + SENTENCE * 3 + "</div>",
]


def _sample_pages(limit: int) -> list[str]:
    from pagecat.data.webkb import load_sample, split_http_response
    from pagecat.etl.parse.decode import decode_html

    pages = []
    for record in load_sample():
        headers, body = split_http_response(record["raw"])
        ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
        pages.append(decode_html(body, ctype)[0])
        if len(pages) >= limit:
            break
    return pages


def _gold_pages(shared_data, limit: int) -> list[str]:
    folder = shared_data / "extraction" / "scrapinghub_article_extraction_benchmark"
    keys = sorted(json.loads((folder / "ground-truth.json").read_text()))[:limit]
    return [gzip.decompress((folder / "html" / f"{key}.html.gz").read_bytes()).decode("utf-8") for key in keys]


def test_the_compiled_walk_is_built():
    assert extract._lexwalk is not None, "build it: pip install --no-deps -e . (needs a C compiler and Python headers)"
    assert HtmlExtractor().compiled and not HtmlExtractor(compiled=False).compiled


def _check_layout(html: str) -> int:
    """Every node under <html> as the walk reads it (type, tag id, parent, text, rule attributes)
    against selectolax's API on the same tree; returns the number of nodes."""
    tree = LexborHTMLParser(html)
    root = tree.root
    rows = extract._lexwalk.nodes(root.mem_id)
    nodes = list(root.traverse(include_text=True))
    assert len(rows) == len(nodes)
    for (kind, tag_id, parent, text, attrs), node in zip(rows, nodes):
        assert tag_id == node.tag_id
        assert parent == node.parent.mem_id
        assert (kind == TEXT) == (node.tag == "-text")
        if kind == TEXT:
            assert (text or "") == node.text()
        if kind == ELEMENT:
            assert attrs == {k: v for k, v in node.attributes.items() if k in RULE_ATTRIBUTES}
    return len(rows)


def test_struct_layouts_match_selectolax_on_real_pages(shared_data_or_none):
    pages = EDGE_PAGES + _sample_pages(150)
    if shared_data_or_none is not None:
        pages += _gold_pages(shared_data_or_none, 40)
    assert sum(_check_layout(html) for html in pages) > 50_000


@pytest.fixture
def shared_data_or_none():
    """The shared data folder when it is beside the repository (the gold pages join the checks)."""
    folder = Path(__file__).resolve().parents[2] / "shared" / "data"
    return folder if folder.is_dir() else None


def _same_output(html) -> None:
    fast, slow = HtmlExtractor().extract(html), HtmlExtractor(compiled=False).extract(html)
    assert dataclasses.asdict(fast) == dataclasses.asdict(slow)


def test_compiled_and_python_paths_give_the_same_pages(shared_data_or_none):
    pages = EDGE_PAGES + _sample_pages(400)
    if shared_data_or_none is not None:
        pages += _gold_pages(shared_data_or_none, 181)
    for html in pages:
        _same_output(html)


def test_bytes_that_are_not_utf8_take_the_python_path():
    good = f"<p class=caf\u00e9>{SENTENCE * 3}</p>".encode()
    assert extract._lexwalk.utf8_valid(good) and not extract._lexwalk.utf8_valid(b"<p>\xff\xfe bad</p>")
    assert not extract._lexwalk.utf8_valid(b"\xed\xa0\x80") and not extract._lexwalk.utf8_valid(b"\xe2\x82")
    for html in (good, b"<p>" + SENTENCE.encode() * 3 + b"\xc3(\xff</p>"):
        _same_output(html)


def test_collapse_and_lines_match_python():
    texts = ["", " ", "  x \n y\u3000z ", "a\t\tb", "a\x1cb \x1d", "caf\u00e9\x1c x", " a \n\t b \x00  \x00 c  d\x00",
             "\u200b\x00x\ufeff y\x00\x00", "\u00a0lead\u2028trail\u0085", "\x00", "one\x00 \x00two \u200b\x1c"]
    for text in texts:
        assert extract._lexwalk.collapse(text) == collapse(text)
        assert extract._lexwalk.lines_of(text) == lines_of(text)


def test_tag_count_stops_at_its_bar():
    assert extract._lexwalk.tag_count(b"<a><b></b>", 100) == 3
    assert extract._lexwalk.tag_count(b"<p>" * 1000, 10) == 10 and extract._lexwalk.tag_count(b"", 5) == 0
