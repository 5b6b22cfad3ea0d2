"""Running stages: one stage, a range of them, or the whole pipeline from one config.

This is the Python API the CLI, notebooks and tests share::

    from pagecat.config import load_config
    from pagecat.pipeline import Pipeline

    cfg = load_config("pagecat.yaml")
    with Pipeline(cfg) as p:          # connects to the cluster (LocalCluster by default)
        p.run()                       # every stage that applies, skipping unchanged ones
        p.run_stage("report", force=True)
"""

from __future__ import annotations

import time

from pagecat.config import Config
from pagecat.errors import UsageError
from pagecat.runs import Manifest, RunDir
from pagecat.stage import check_upstream, execute
from pagecat.stages import STAGE_ORDER, get_stage


def stages_for(cfg: Config, start: str | None = None, stop: str | None = None) -> list[str]:
    """The stages ``run`` executes: crawl only when there are seeds to crawl."""
    names = list(STAGE_ORDER)
    if not (cfg.crawl.seeds or cfg.crawl.urls):
        names.remove("crawl")
        if not cfg.parse.inputs and start in (None, "crawl", "parse"):
            raise UsageError("nothing to run: set crawl.seeds (or crawl.urls) to crawl, or parse.inputs to parse "
                             "existing WARC/HTML/table files")
    for which, name in (("--from", start), ("--to", stop)):
        if name is not None and name not in names:
            raise UsageError(f"{which} {name}: not a stage of this run; choose from {', '.join(names)}")
    lo = names.index(start) if start else 0
    hi = names.index(stop) if stop else len(names) - 1
    return names[lo:hi + 1]


class Pipeline:
    """A config, its run directory and a cluster client, and the stages run against them."""

    def __init__(self, cfg: Config, client=None):
        self.cfg = cfg
        self.run_dir = RunDir(cfg.run.dir)
        self._client = client
        self._owns_client = client is None

    @property
    def client(self):
        if self._client is None:
            from pagecat.cluster import connect

            self._client = connect(self.cfg)
        return self._client

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None and self._owns_client:
            cluster = getattr(self._client, "cluster", None)
            self._client.close()
            if cluster is not None:
                cluster.close()
        self._client = None

    def run_stage(self, name: str, *, force: bool = False) -> Manifest:
        if name not in STAGE_ORDER:
            raise UsageError(f"unknown stage {name!r}; choose from {', '.join(STAGE_ORDER)}")
        stage = get_stage(name)
        # bad config, inputs or a missing upstream stage fail before a cluster starts
        stage.check(self.cfg, self.run_dir)
        check_upstream(stage, self.cfg, self.run_dir)
        return execute(stage, self.cfg, self.run_dir, self.client, force=force)

    def run(self, start: str | None = None, stop: str | None = None, *, force: bool = False) -> dict:
        """Run stages in order; returns {stage: manifest}. Unchanged stages are skipped."""
        names = stages_for(self.cfg, start, stop)
        t0 = time.perf_counter()
        done = {name: self.run_stage(name, force=force) for name in names}
        print(f"[pipeline] {len(done)} stages in {time.perf_counter() - t0:.1f}s; run directory "
              f"{self.run_dir.url()}")
        return done
