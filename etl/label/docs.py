"""Docs from pages: one doc per page (``label.unit`` page or entry); ``sites`` builds site docs.

A doc here is a dict of the DOCS columns it has before labelling (doc_id, url, host, title,
text, fields) plus what the labelers read: ``key`` (the labels-file join key), ``rule_fields``.
"""

from __future__ import annotations

import pyarrow as pa

from pagecat.etl.label_keys import KEYS

PAGE_COLUMNS = ["page_id", "url", "host", "domain", "title", "text", "word_count", "seed_id", "depth"]
RULE_PAGE_FIELDS = ("url", "host", "domain", "title", "text", "word_count", "seed_id")


def page_docs(pages: pa.Table, join_on: str) -> list[dict]:
    """One doc per page row: {doc_id, url, host, title, text, fields, key, rule_fields}."""
    to_key, column = KEYS[join_on]
    rows = pages.to_pylist()
    out = []
    for r in rows:
        out.append({"doc_id": r["page_id"], "url": r.get("url"), "host": r.get("host"), "title": r.get("title"),
                    "text": r.get("text"), "fields": None, "key": to_key(r.get(column)) if r.get(column) else None,
                    "rule_fields": {k: r.get(k) for k in RULE_PAGE_FIELDS if r.get(k) is not None}})
    return out
