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
    # Added by parse's deepening (readers use column names, so new columns go at the end).
    ("canonical_url", pa.string()),    # <link rel=canonical>, resolved against the URL; null when absent
    ("path", pa.string()),             # the URL's path ("/" for a bare host)
    ("description", pa.string()),      # <meta name=description>
    ("headings", pa.list_(pa.string())),  # h1-h3 text in document order (at most 50)
    ("full_text", pa.string()),        # all visible text, boilerplate included, whitespace collapsed
    ("language", pa.string()),         # ISO 639-1 code guessed from the text; null when unsure
    ("outlinks", pa.int32()),          # <a href> that lead to a page
    ("rank", pa.int32()),              # crawl: the link's rank on its site (0 = seed)
    ("link_text", pa.string()),        # crawl: the text of the link that led here
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
    ("cluster_id", pa.string()),       # page_id of the cluster's earliest page: same for all its members
])

# the pages rows of one part that dedup decided to drop (sent with the part's apply task)
DEDUP_DECISIONS = pa.schema([
    ("row", pa.int64()),               # row of the page in its pages part
    ("kept_id", pa.string()),          # the page kept in its place
    ("kind", pa.string()),             # exact | url | near
    ("similarity", pa.float32()),
    ("cluster_id", pa.string()),
])

DOCS = pa.schema([
    ("doc_id", pa.string()),
    ("url", pa.string()),
    ("host", pa.string()),
    ("title", pa.string()),
    ("text", pa.string()),
    ("label", pa.string()),            # null when untagged
    ("label_source", pa.string()),     # person | file | rules | model | zero_shot, null when untagged
    ("group", pa.string()),            # a grouping column (site, university, ...) for splits
    ("label_confidence", pa.float32()),  # the winning vote's confidence (1.0 for person/file/rules)
    ("label_agreement", pa.float32()),   # share of the doc's votes that agree with its label
    ("label_votes", pa.string()),      # JSON list of {source, label, confidence}, every labeler's vote
    ("sample_weight", pa.float32()),   # class-balance weight for training (1.0 = as is; null = 1.0)
    ("fields", pa.string()),           # unit site: JSON {name, domain_words, tld, titles, texts}; else null
])

TFIDF = pa.schema([
    ("doc_id", pa.string()),
    ("indices", pa.list_(pa.int32())),  # sparse row: hashed feature ids
    ("values", pa.list_(pa.float32())), # and their L2-normalised TF-IDF weights
])

# features/emb/<part>: one dense vector per doc. The width is the encoder's (384 for MiniLM) times
# the fields encoded apart (features/emb_model/settings.json names both), so the schema is built
# for it: ``emb_schema(dim)``; every part of one run has the same width.
def emb_schema(dim: int) -> pa.Schema:
    return pa.schema([
        ("doc_id", pa.string()),
        ("embedding", pa.list_(pa.float32(), dim)),  # fixed-size list: L2-normalised per field, joined
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
