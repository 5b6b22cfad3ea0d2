"""The on-disk frontier: bounded memory, and what ``recover`` gives back after a kill."""

from __future__ import annotations

import os

from pagecat.etl.crawl.frontier import Frontier, Visit


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_a_big_frontier_stays_on_disk(tmp_path):
    n = 200_000  # the benchmark's 1,000,000 in a fifth: at most a fifth of its 200 MB bound
    f = Frontier(tmp_path / "frontier.sqlite")
    before = _rss_mb()
    for i in range(n):
        if i % 10 == 0:
            host = f"site{i // 10}.example"
            site = f.add_site(f"seed{i}", f"http://{host}/", host)
        f.enqueue(Visit(f"http://{host}/products/item-{i}/about-the-company.html", f"seed{i}", 1, i % 10,
                        f"http://{host}/", "About our company", site))
    f.commit()
    added = _rss_mb() - before
    assert f.queued == n
    assert added < 40, f"{added:.0f} MB for {n} queued URLs"
    first = f.queued_at(site, 1, "x")[0]
    assert first.url == f"http://{host}/products/item-{n - 10}/about-the-company.html"
    f.close()


def test_recover_requeues_lost_fetches_and_returns_lost_rows(tmp_path):
    path = tmp_path / "f.sqlite"
    f = Frontier(path)
    site = f.add_site("s", "http://a.example/", "a.example")
    seed, page, offsite, flying = (Visit(u, "s", d, r, None, None, site) for u, d, r in [
        ("http://a.example/", 0, 0), ("http://a.example/p", 1, 1), ("http://b.example/", 1, 2),
        ("http://a.example/q", 1, 3)])
    for v in (seed, page, flying):
        f.enqueue(v)
        f.claim(v.url, v.owner)
        f.start(v)
    f.log_fetched(seed, "fetched", None, seg=0)  # in segment 0, complete
    f.add_links(seed, [(0, 0, "http://a.example/p", "P")], seg=0)
    f.log_fetched(page, "fetched", None, seg=1)  # in segment 1, lost
    f.add_links(page, [(0, 0, "http://a.example/r", "R")], seg=1)
    f.log_unfetched(offsite, "filtered", "offsite", seg=1)
    f.set("last_seg", 1)
    f.commit()
    f.log_fetched(flying, "fetched", None, seg=2)  # never committed: the kill came first
    f.db.close()  # a kill: the open transaction is gone

    f = Frontier(path)
    lost = f.recover(last_complete=0)
    assert [(r[2], r[7], r[8]) for r in lost] == [("http://b.example/", "filtered", "offsite")]
    assert [v.url for v in f.queued_at(site, 1, "s")] == ["http://a.example/p", "http://a.example/q"]
    assert f.queued == 2 and f.attempts(site) == 1  # only the seed's fetch still counts
    assert f.take_links(site, 0) == [("http://a.example/p", "P", "http://a.example/", 0)]
    assert f.take_links(site, 1) == []  # the lost page's links go; it is fetched again
    assert f.claim("http://a.example/p", page.owner)  # its own claim survives, for the refetch
    f.close()
