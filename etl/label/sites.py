"""Site docs (``label.unit: site``): a site's first N pages by link rank make one doc, its fields
kept apart.

A site is a registered domain. Its pages are ordered by the crawl's link rank (``crawl_log/``:
0 = the seed, then links by how informative they are: about, services, products, ...); pages
the log does not rank come after, by depth then URL. The doc keeps, each cut to its budget
(``label.site_*_chars``):

    fields = {"name": seeds-file name, "domain_words": "acme plumbing", "tld": "co.uk",
              "titles": [...], "texts": [...]}      (the DOCS column ``fields``, JSON)

and ``text`` joins them (name, domain words, titles, texts) so TF-IDF reads a site as one text.
The doc id is the domain; ``url`` is its first page's; ``group`` the domain unless the labels
file gives one.

Distribution: the label stage plans K site buckets; the task for bucket k reads the ``domain``
column of every pages part and keeps the rows whose domain hashes to k, so a site's pages meet
in one task wherever they were parsed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re

import fsspec
import pyarrow as pa
import pyarrow.compute as pc

from pagecat.config import Config
from pagecat.etl.label_keys import canonical_url
from pagecat.runs import RunDir, file_fingerprint

from .docs import PAGE_COLUMNS


def site_bucket(domain: str | None, buckets: int) -> int:
    """Stable bucket of a domain (sha1, not Python's salted hash)."""
    return int.from_bytes(hashlib.sha1((domain or "").encode()).digest()[:4], "big") % buckets


def domain_words(domain: str) -> tuple[str, str]:
    """A registered domain to (name words, public suffix): ``acme-plumbing.co.uk`` ->
    ("acme plumbing", "co.uk"); ``AcmeCorp.com`` -> ("acme corp", "com")."""
    name, _, suffix = domain.partition(".")
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return " ".join(w for w in re.split(r"[-_.\d]+", words.lower()) if w), suffix


@functools.lru_cache(maxsize=2)
def _seed_names(path: str, fingerprint: str) -> dict[str, str]:
    fs, p = fsspec.core.url_to_fs(path)
    with fs.open(p, "rb") as fh:
        if p.lower().endswith(".parquet"):
            import pyarrow.parquet as pq

            t = pq.read_table(fh)
        else:
            import pyarrow.csv as pacsv

            t = pacsv.read_csv(fh, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    if "name" not in t.column_names or "url_id" not in t.column_names:
        return {}
    return {str(i): n for i, n in zip(t.column("url_id").to_pylist(), t.column("name").to_pylist()) if n}


def seed_names(cfg: Config) -> dict[str, str]:
    """url_id -> business name from the crawl's seeds file (empty when there is none or no name column)."""
    path = cfg.crawl.seeds
    if not path:
        return {}
    fs, p = fsspec.core.url_to_fs(path)
    return _seed_names(path, file_fingerprint(path)) if fs.exists(p) else {}


def crawl_ranks(run: RunDir) -> dict[str, int]:
    """canonical URL -> link rank of the crawl log's fetched URLs (empty without a crawl log)."""
    ranks: dict[str, int] = {}
    for f in run.list_files("crawl_log", suffix=".parquet"):
        t = run.read_part(f, columns=["url", "rank", "outcome"])
        t = t.filter(pc.equal(t["outcome"], "fetched"))
        for url, rank in zip(t["url"].to_pylist(), t["rank"].to_pylist()):
            key = canonical_url(url)
            if key and rank is not None:
                ranks[key] = min(rank, ranks.get(key, rank))
    return ranks


def read_bucket(run: RunDir, files: list[str], bucket: int, buckets: int) -> pa.Table:
    """The pages (PAGE_COLUMNS) of every part whose domain falls in ``bucket``."""
    tables = []
    for f in files:
        domains = run.read_part(f, columns=["domain"])["domain"].to_pylist()
        mask = [site_bucket(d, buckets) == bucket for d in domains]
        if any(mask):
            tables.append(run.read_part(f, columns=PAGE_COLUMNS).filter(pa.array(mask)))
    return pa.concat_tables(tables) if tables else None


def site_docs(pages: pa.Table, cfg: Config, ranks: dict[str, int], names: dict[str, str]) -> tuple[list[dict], int]:
    """Site docs from a bucket's pages; and how many pages fell beyond the first N of their site."""
    s = cfg.label
    by_site: dict[str, list[dict]] = {}
    for r in pages.to_pylist():
        by_site.setdefault(r["domain"] or r["host"] or "", []).append(r)
    docs, beyond = [], 0
    for domain in sorted(by_site):
        site = by_site[domain]
        site.sort(key=lambda r: (ranks.get(canonical_url(r["url"]) or "", 1 << 30), r.get("depth") or 0,
                                 r["url"] or ""))
        beyond += max(len(site) - s.site_pages, 0)
        site = site[:s.site_pages]
        first = site[0]
        words, tld = domain_words(domain) if domain else ("", "")
        name = names.get(first.get("seed_id") or "", "")[:s.site_name_chars]
        fields = {"name": name, "domain_words": words, "tld": tld,
                  "titles": [(r["title"] or "")[:s.site_title_chars] for r in site],
                  "texts": [(r["text"] or "")[:s.site_text_chars] for r in site]}
        text = "\n".join(x for x in [name, words, *fields["titles"], *fields["texts"]] if x)
        key = {"url": canonical_url(first["url"]), "url_id": first.get("seed_id"), "domain": domain or None}
        docs.append({"doc_id": domain, "url": first["url"], "host": first["host"], "title": fields["titles"][0],
                     "text": text, "fields": json.dumps(fields), "key": key[s.join_on], "default_group": domain,
                     "pages": len(site),
                     "rule_fields": {"url": first["url"], "host": first["host"], "domain": domain, "name": name,
                                     "tld": tld, "title": " ".join(fields["titles"]), "text": text,
                                     "seed_id": first.get("seed_id"), "pages": len(site)}})
    return docs, beyond
