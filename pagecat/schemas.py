"""Dataset schemas: each dataset has one pyarrow schema, declared here and nowhere else.

Stages meet only at these datasets. Every Parquet part a stage writes is cast to its schema
first, so a reader can trust the column names and types whatever wrote them.
"""

import pyarrow as pa

# One row per (seed, URL) the crawl met, with exactly one final outcome; a URL is fetched once.
CRAWL_LOG = pa.schema([
    ("seed_id", pa.string()),          # the seed this URL was reached from
    ("url", pa.string()),              # canonical URL
    ("outcome", pa.string()),          # fetched | failed | skipped | filtered
    ("reason", pa.string()),           # why, for anything but fetched (http_404, timeout, robots, ...)
    ("status", pa.int32()),            # HTTP status, 0 when there was no response
    ("bytes", pa.int64()),             # body bytes kept
    ("truncated", pa.bool_()),
    ("seconds", pa.float64()),         # fetch time
    ("fetched_at", pa.string()),       # ISO 8601 UTC
    ("depth", pa.int32()),
    ("rank", pa.int32()),              # order of the link on its site by priority (0 = seed)
    ("referrer", pa.string()),
    ("link_text", pa.string()),
    ("warc_file", pa.string()),        # where the response record is, when fetched
    ("warc_offset", pa.int64()),
])

PAGES = pa.schema([
    ("page_id", pa.string()),          # sha1 of the URL (or of source + row for tables)
    ("url", pa.string()),
    ("host", pa.string()),
    ("domain", pa.string()),           # registered domain
    ("title", pa.string()),
    ("text", pa.string()),             # main text, boilerplate removed
    ("word_count", pa.int32()),
    ("text_hash", pa.string()),        # hash of the normalised text, for exact dedup
    ("http_status", pa.int32()),
    ("fetched_at", pa.string()),
    ("seed_id", pa.string()),
    ("depth", pa.int32()),
    ("source", pa.string()),           # the raw input file
    ("source_offset", pa.int64()),     # WARC record offset or table row
])

REJECTS = pa.schema([
    ("source", pa.string()),           # input file (and record offset or row)
    ("stage", pa.string()),
    ("reason", pa.string()),
    ("record", pa.string()),           # the record's id or URL, for finding it again
])

DUPLICATES = pa.schema([
    ("page_id", pa.string()),          # the dropped page
    ("url", pa.string()),
    ("kept_id", pa.string()),          # the page kept in its place
    ("kind", pa.string()),             # exact | url | near
    ("similarity", pa.float32()),
])

# dedup/_decisions/<part id>: the pages rows dedup's plan decided that part drops.
DEDUP_DECISIONS = pa.schema([
    ("row", pa.int64()),               # row of the page in its pages part
    ("kept_id", pa.string()),          # the page kept in its place
    ("kind", pa.string()),             # exact | url | near
    ("similarity", pa.float32()),
])

DOCS = pa.schema([
    ("doc_id", pa.string()),
    ("url", pa.string()),
    ("host", pa.string()),
    ("title", pa.string()),
    ("text", pa.string()),
    ("label", pa.string()),            # null when untagged
    ("label_source", pa.string()),     # file | rules | model | person, null when untagged
    ("group", pa.string()),            # a grouping column (site, university, ...) for splits
])

TFIDF = pa.schema([
    ("doc_id", pa.string()),
    ("indices", pa.list_(pa.int32())),  # sparse row: hashed feature ids
    ("values", pa.list_(pa.float32())), # and their L2-normalised TF-IDF weights
])

PREDICTIONS = pa.schema([
    ("doc_id", pa.string()),
    ("url", pa.string()),
    ("label", pa.string()),
    ("probability", pa.float32()),
    ("top_labels", pa.list_(pa.string())),
    ("top_probabilities", pa.list_(pa.float32())),
    ("model", pa.string()),
])


def table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Rows (dicts) to a table of ``schema``; missing keys become nulls."""
    return pa.Table.from_pylist(rows, schema=schema)
