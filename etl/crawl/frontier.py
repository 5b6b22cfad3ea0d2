"""A shard's crawl state on disk (sqlite3): sites, queued URLs, found links, claimed URLs.

The frontier of a big crawl does not fit in memory (250,000 sites x their links), so it lives in
one sqlite file per shard; the process keeps only the waves being fetched. It is also what makes
a shard resumable: the state is committed in one transaction per output *segment* (see
``segments``), so after a kill the database and the segment files agree on what is done.

Tables::

    sites(id, seed_id, url, domain, status, next_rank, seg)   status: 0 pending, 2 done
    urls(site, url, depth, rank, referrer, link_text, state, attempted, outcome, reason, seg)
        state: 0 queued, 1 in flight, 2 logged (its crawl-log row is in segment ``seg``);
        attempted: the URL counts against its site's page budget (a fetch was tried)
    links(site, depth, priority, parent_rank, position, url, text, referrer, seg)
        links of fetched pages, waiting to be ranked when their depth's wave ends
    claims(url, owner)   URLs fetched (or redirected to) in this shard: fetched once per crawl
    meta(key, value)     last_seg, retries, seeded, complete

``recover(C)`` (C = the last segment whose files are complete) undoes what was lost with the
segments after C: their fetched URLs are queued again, their links dropped, and the rows that
needed no fetch (offsite, max_pages, ...) are handed back to be written again.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

QUEUED, IN_FLIGHT, LOGGED = 0, 1, 2
PENDING, DONE = 0, 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sites(id INTEGER PRIMARY KEY, seed_id TEXT, url TEXT, domain TEXT,
    status INTEGER, next_rank INTEGER, seg INTEGER);
CREATE TABLE IF NOT EXISTS urls(site INTEGER, url TEXT, depth INTEGER, rank INTEGER, referrer TEXT,
    link_text TEXT, state INTEGER, attempted INTEGER, outcome TEXT, reason TEXT, seg INTEGER,
    PRIMARY KEY(site, url)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS urls_queue ON urls(site, state, depth, rank);
CREATE TABLE IF NOT EXISTS links(site INTEGER, depth INTEGER, priority INTEGER, parent_rank INTEGER,
    position INTEGER, url TEXT, text TEXT, referrer TEXT, seg INTEGER);
CREATE INDEX IF NOT EXISTS links_site ON links(site, depth);
CREATE TABLE IF NOT EXISTS claims(url TEXT PRIMARY KEY, owner TEXT) WITHOUT ROWID;
"""


@dataclass
class Visit:
    """A URL queued for a site."""

    url: str  # canonical (or the raw href, for a malformed one)
    seed_id: str
    depth: int
    rank: int
    referrer: str | None = None
    link_text: str | None = None
    site: int = 0  # the site's id in the frontier

    @property
    def owner(self) -> str:
        """The claim key of this visit: a URL one visit claimed stays its own on resume."""
        return f"{self.site}\t{self.url}"


@dataclass
class SiteRef:
    id: int
    seed_id: str
    url: str
    domain: str


class Frontier:
    """The sqlite state of one shard. ``path`` ':memory:' for a crawl that is never resumed.

    All calls come from one thread (the shard's event loop). Writes stay in an open transaction
    until ``commit()``; the caller commits once per segment, never in between.
    """

    def __init__(self, path: str | Path = ":memory:", cache_mb: int = 8):
        self.path = str(path)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL" if self.path != ":memory:" else "PRAGMA journal_mode=MEMORY")
        self.db.execute("PRAGMA synchronous=NORMAL")  # a process kill loses nothing committed
        self.db.execute(f"PRAGMA cache_size=-{cache_mb * 1024}")  # KiB: the RAM the frontier may use
        self.db.execute("PRAGMA temp_store=FILE")
        self.db.executescript(_SCHEMA)
        self.db.execute("BEGIN")
        self.queued = self.db.execute("SELECT count(*) FROM urls WHERE state=?", (QUEUED,)).fetchone()[0]

    def close(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")  # only commit() makes state durable
        self.db.close()

    def commit(self) -> None:
        self.db.execute("COMMIT")
        self.db.execute("BEGIN")

    # -- meta ------------------------------------------------------------------------------
    def get(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else row[0]

    def set(self, key: str, value) -> None:
        self.db.execute("INSERT INTO meta VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                        (key, value))

    # -- sites -----------------------------------------------------------------------------
    def add_site(self, seed_id: str, url: str, domain: str, status: int = PENDING) -> int:
        cur = self.db.execute("INSERT INTO sites(seed_id, url, domain, status, next_rank) VALUES(?,?,?,?,1)",
                              (seed_id, url, domain, status))
        return cur.lastrowid

    def pending_sites(self, after: int, limit: int) -> list[SiteRef]:
        rows = self.db.execute("SELECT id, seed_id, url, domain FROM sites WHERE status=? AND id>? "
                               "ORDER BY id LIMIT ?", (PENDING, after, limit)).fetchall()
        return [SiteRef(*r) for r in rows]

    def count_pending_sites(self) -> int:
        return self.db.execute("SELECT count(*) FROM sites WHERE status=?", (PENDING,)).fetchone()[0]

    def site_done(self, site: int, seg: int) -> None:
        self.db.execute("UPDATE sites SET status=?, seg=? WHERE id=?", (DONE, seg, site))

    # -- urls ------------------------------------------------------------------------------
    def known(self, site: int, url: str) -> bool:
        """``url`` is queued or logged for ``site`` already, or claimed by any site (one query)."""
        return self.db.execute("SELECT EXISTS(SELECT 1 FROM urls WHERE site=? AND url=?) "
                               "OR EXISTS(SELECT 1 FROM claims WHERE url=?)", (site, url, url)).fetchone()[0] == 1

    def enqueue(self, v: Visit) -> None:
        self.db.execute("INSERT INTO urls VALUES(?,?,?,?,?,?,?,0,NULL,NULL,NULL)",
                        (v.site, v.url, v.depth, v.rank, v.referrer, v.link_text, QUEUED))
        self.queued += 1

    def log_unfetched(self, v: Visit, outcome: str, reason: str, seg: int) -> None:
        """Record a row that needed no fetch (filtered, max_pages): kept to write it again on resume."""
        prev = self.db.execute("SELECT state FROM urls WHERE site=? AND url=?", (v.site, v.url)).fetchone()
        if prev is not None and prev[0] == QUEUED:
            self.queued -= 1
        self.db.execute("INSERT INTO urls VALUES(?,?,?,?,?,?,?,0,?,?,?) ON CONFLICT(site, url) DO UPDATE SET "
                        "state=excluded.state, attempted=0, outcome=excluded.outcome, reason=excluded.reason, "
                        "seg=excluded.seg",
                        (v.site, v.url, v.depth, v.rank, v.referrer, v.link_text, LOGGED, outcome, reason, seg))

    def log_new(self, v: Visit, outcome: str, reason: str, seg: int) -> None:
        """``log_unfetched`` for a URL the frontier does not hold yet (``known`` said so)."""
        self.db.execute("INSERT INTO urls VALUES(?,?,?,?,?,?,?,0,?,?,?)",
                        (v.site, v.url, v.depth, v.rank, v.referrer, v.link_text, LOGGED, outcome, reason, seg))

    def log_queued(self, v: Visit, outcome: str, reason: str, seg: int) -> None:
        """``log_unfetched`` for a URL ``queued_at`` just gave (so queued, never attempted)."""
        self.db.execute("UPDATE urls SET state=?, outcome=?, reason=?, seg=? WHERE site=? AND url=?",
                        (LOGGED, outcome, reason, seg, v.site, v.url))
        self.queued -= 1

    def lowest_queued_depth(self, site: int) -> int | None:
        return self.db.execute("SELECT min(depth) FROM urls WHERE site=? AND state=?", (site, QUEUED)).fetchone()[0]

    def queued_at(self, site: int, depth: int, seed_id: str) -> list[Visit]:
        rows = self.db.execute("SELECT url, depth, rank, referrer, link_text FROM urls WHERE site=? AND state=? "
                               "AND depth=? ORDER BY rank", (site, QUEUED, depth)).fetchall()
        return [Visit(u, seed_id, d, r, ref, text, site) for u, d, r, ref, text in rows]

    def attempts(self, site: int) -> int:
        return self.db.execute("SELECT count(*) FROM urls WHERE site=? AND attempted=1", (site,)).fetchone()[0]

    def claim(self, url: str, owner: str) -> bool:
        """Claim ``url`` for fetching by ``owner``; False when another visit has it."""
        self.db.execute("INSERT OR IGNORE INTO claims VALUES(?, ?)", (url, owner))
        return self.db.execute("SELECT owner FROM claims WHERE url=?", (url,)).fetchone()[0] == owner

    def is_claimed(self, url: str) -> bool:
        return self.db.execute("SELECT 1 FROM claims WHERE url=?", (url,)).fetchone() is not None

    def start(self, v: Visit) -> None:
        """``v`` is being fetched: it counts against its site's budget from now on."""
        self.db.execute("UPDATE urls SET state=?, attempted=1 WHERE site=? AND url=?", (IN_FLIGHT, v.site, v.url))
        self.queued -= 1

    def drop(self, v: Visit) -> None:
        """A queued URL another visit fetched meanwhile: it is not queued twice, and has no row."""
        self.db.execute("DELETE FROM urls WHERE site=? AND url=?", (v.site, v.url))
        self.queued -= 1

    def log_fetched(self, v: Visit, outcome: str, reason: str | None, seg: int) -> None:
        self.db.execute("UPDATE urls SET state=?, outcome=?, reason=?, seg=? WHERE site=? AND url=?",
                        (LOGGED, outcome, reason, seg, v.site, v.url))

    # -- links -----------------------------------------------------------------------------
    def add_links(self, v: Visit, links: list[tuple[int, int, str, str]], seg: int) -> None:
        """Links of ``v``'s page as (priority, position, url, text), ranked when the wave ends."""
        self.db.executemany("INSERT INTO links VALUES(?,?,?,?,?,?,?,?,?)",
                            [(v.site, v.depth, p, v.rank, pos, u, t, v.url, seg) for p, pos, u, t in links])

    def take_links(self, site: int, depth: int) -> list[tuple[str, str, str, int]]:
        """The links found at ``depth`` in rank order (priority, parent's rank, position), removed:
        (url, text, referrer, parent depth)."""
        rows = self.db.execute("SELECT url, text, referrer, depth FROM links WHERE site=? AND depth=? "
                               "ORDER BY priority, parent_rank, position", (site, depth)).fetchall()
        self.db.execute("DELETE FROM links WHERE site=? AND depth=?", (site, depth))
        return rows

    def next_rank(self, site: int) -> int:
        return self.db.execute("SELECT next_rank FROM sites WHERE id=?", (site,)).fetchone()[0]

    def set_next_rank(self, site: int, rank: int) -> None:
        self.db.execute("UPDATE sites SET next_rank=? WHERE id=?", (rank, site))

    # -- resume ----------------------------------------------------------------------------
    def recover(self, last_complete: int) -> list[tuple]:
        """Undo what the segments after ``last_complete`` held (they were lost with a kill).

        Returns the rows that need writing again, as (site, seed_id, url, depth, rank, referrer,
        link_text, outcome, reason), in site and rank order.
        """
        c = last_complete
        self.db.execute("UPDATE urls SET state=?, attempted=0, outcome=NULL, reason=NULL, seg=NULL "
                        "WHERE state=? OR (state=? AND attempted=1 AND seg>?)", (QUEUED, IN_FLIGHT, LOGGED, c))
        self.db.execute("DELETE FROM links WHERE seg>?", (c,))
        self.db.execute("UPDATE sites SET status=?, seg=NULL WHERE status=? AND seg>?", (PENDING, DONE, c))
        rows = self.db.execute(
            "SELECT u.site, s.seed_id, u.url, u.depth, u.rank, u.referrer, u.link_text, u.outcome, u.reason "
            "FROM urls u JOIN sites s ON s.id=u.site WHERE u.state=? AND u.attempted=0 AND u.seg>? "
            "ORDER BY u.site, u.rank", (LOGGED, c)).fetchall()
        self.queued = self.db.execute("SELECT count(*) FROM urls WHERE state=?", (QUEUED,)).fetchone()[0]
        return rows
