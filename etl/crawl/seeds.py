"""Seeds: the sites to crawl, from ``crawl.seeds`` (CSV or Parquet) and/or ``crawl.urls``.

A seeds file has a ``url`` column and optionally ``url_id``, ``name`` and ``label``; a missing
``url_id`` (and every ``crawl.urls`` entry) gets ``sha1(url)[:16]``, so ids stay the same when
the list is reordered. Seeds are grouped into shards by registered domain, so one site, and
every host of it, is crawled by one worker and politeness per host holds cluster-wide.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pagecat.config import CrawlSettings
from pagecat.errors import UsageError
from pagecat.urls import MalformedURL, canonicalize, site_of

SEED_COLUMNS = ("url_id", "url", "name", "label")


@dataclass(frozen=True, slots=True)
class Seed:
    url_id: str
    url: str  # as given; the crawler canonicalises it
    name: str | None = None
    label: str | None = None


def url_id(url: str) -> str:
    return hashlib.sha1(url.strip().encode("utf-8")).hexdigest()[:16]


def _read_table(path: str) -> pa.Table:
    fs, p = fsspec.core.url_to_fs(path)
    if not fs.exists(p):
        raise UsageError(f"crawl.seeds {path}: file not found; point crawl.seeds at an existing CSV or "
                         "Parquet file, or list URLs under crawl.urls")
    with fs.open(p, "rb") as f:
        data = f.read()
    try:
        # One thread: a seeds file is read once per shard, and Arrow's thread pool should not stay in every
        # crawl process (its memory comes from the C library's heap there: ``shard.system_arrow_pool``).
        if path.lower().endswith((".parquet", ".pq")):
            return pq.ParquetFile(io.BytesIO(data), memory_map=False).read(use_threads=False)
        convert = pacsv.ConvertOptions(column_types={c: pa.string() for c in SEED_COLUMNS}, strings_can_be_null=True)
        return pacsv.read_csv(io.BytesIO(data), read_options=pacsv.ReadOptions(use_threads=False),
                              convert_options=convert)
    except (pa.ArrowInvalid, OSError) as e:
        raise UsageError(f"crawl.seeds {path}: cannot read it as CSV/Parquet ({e}); fix the file") from None


def read_seed_file(path: str) -> list[Seed]:
    table = _read_table(path)
    if "url" not in table.column_names:
        raise UsageError(f"crawl.seeds {path}: no 'url' column (columns: {', '.join(table.column_names)}); "
                         "add a header row with url (and optionally url_id, name, label)")
    cols = {c: table.column(c).cast(pa.string()).to_pylist() if c in table.column_names else None
            for c in SEED_COLUMNS}
    seeds = []
    for i, url in enumerate(cols["url"]):
        url = (url or "").strip()
        given = cols["url_id"][i] if cols["url_id"] is not None else None
        seeds.append(Seed(url_id=str(given) if given not in (None, "") else url_id(url), url=url,
                          name=cols["name"][i] if cols["name"] is not None else None,
                          label=cols["label"][i] if cols["label"] is not None else None))
    return seeds


def check_seeds(settings: CrawlSettings) -> None:
    """Raise UsageError (naming the file and the fix) when the seeds cannot be read."""
    if not settings.seeds and not settings.urls:
        raise UsageError("crawl: no seeds; set crawl.seeds to a CSV/Parquet file with a url column, "
                         "or list URLs under crawl.urls")
    if settings.seeds and not read_seed_file(settings.seeds) and not settings.urls:
        raise UsageError(f"crawl.seeds {settings.seeds}: no rows; add one URL per row under the header")


def read_seeds(settings: CrawlSettings) -> list[Seed]:
    """The seeds file's rows, then ``crawl.urls``, in order."""
    seeds = read_seed_file(settings.seeds) if settings.seeds else []
    seeds += [Seed(url_id=url_id(u), url=u.strip()) for u in settings.urls]
    return seeds


def seed_site(seed: Seed) -> str:
    """The seed's registered domain; for a URL that cannot be parsed, the URL itself."""
    try:
        return site_of(canonicalize(seed.url)) or seed.url
    except MalformedURL:
        return seed.url


def shard_of(seed: Seed, shards: int) -> int:
    """Stable shard of a seed: a hash of its registered domain modulo ``shards``."""
    digest = hashlib.sha1(seed_site(seed).encode("utf-8")).hexdigest()
    return int(digest[:8], 16) % shards
