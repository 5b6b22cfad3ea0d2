"""The crawler: seeds -> WARC + crawl log, politely (robots.txt, per-host limits, backoff).

Modules, each usable alone:

- ``urls``: canonical URLs, registered domain (site);
- ``links``: link extraction and ranking (what a page means to the crawl);
- ``robots``: robots.txt cache;
- ``politeness``: ``HostGate`` (per-origin concurrency, delay, Retry-After pauses);
- ``safety``: refusing loopback/private targets (``SafeResolver``);
- ``fetch``: ``Fetcher``, one URL with robots, politeness, retries, redirects and safety;
- ``frontier``: ``Frontier``, a shard's state in sqlite (queue, seen URLs, budgets): bounded RAM, resumable;
- ``engine``: ``ShardCrawler`` / ``crawl_shard``, the sites of one shard, breadth first;
- ``segments``: ``SegmentedOutput``, WARC + crawl-log segments completed atomically (``MemoryOutput``);
- ``warc``: ``WarcShardWriter``;
- ``render``: ``ChromiumRenderer``, optional JavaScript rendering over the DevTools protocol;
- ``progress``: shards' counters as Dask events, ``CrawlProgress`` printing the live line;
- ``seeds``: reading and sharding seeds;
- ``shard``: ``crawl_part``, one shard start to finish (resume, counts) in the calling process, with or without Dask;
- ``stage``: ``CrawlStage``, the pipeline stage;
- ``replay``: ``ReplayProxy``, archived pages served as an HTTP proxy (demo, tests).
"""
