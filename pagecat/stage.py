"""What every stage is, and the one runner that skips, resumes and counts them.

A stage splits its work into parts (one input file or shard each). ``run_part`` runs on a
Dask worker, writes that part's outputs atomically and returns its counts. The runner records
the finished parts in ``manifests/<stage>.json`` at most once every ``SAVE_EVERY`` seconds while
they complete, and whenever it stops (failed parts, an interrupt), so a stage killed in the
middle resumes at the parts not yet recorded (a part redone overwrites its outputs, never
duplicates them); a stage whose config and inputs are unchanged is skipped. Not a save per part:
the manifest grows with the parts, and thousands of parts would write it thousands of times.

Counts keep the contract ``in = out + rejected + dropped``: ``dropped`` is for records left
out on purpose (duplicates), ``rejected`` for records written to ``rejects/<stage>/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from distributed import Client, as_completed
from tqdm.auto import tqdm

from pagecat.config import Config
from pagecat.errors import StageError, UsageError
from pagecat.runs import Manifest, RunDir, file_fingerprint, now_iso, versions

SAVE_EVERY = 1.0  # seconds between the manifest saves that record finished parts


@dataclass
class Part:
    """One unit of work: ``id`` names its outputs, so a re-run overwrites, never duplicates."""

    id: str
    inputs: list[str] = field(default_factory=list)
    args: dict[str, Any] = field(default_factory=dict)


class Stage:
    """Base class. Subclasses set the class attributes and implement ``plan`` and ``run_part``."""

    name: str = ""
    sections: tuple[str, ...] = ()      # config sections that change this stage's output
    upstream: tuple[str, ...] = ()      # stages whose outputs this one reads
    outputs: tuple[str, ...] = ()       # run-dir folders this stage owns (cleared on a fresh start)
    unit: str = "records"               # what the throughput counts
    resources: dict[str, float] | None = None  # Dask worker resources each part needs

    def upstream_stages(self, cfg: Config) -> tuple[str, ...]:
        """Stages whose outputs this one reads under ``cfg`` (default: ``upstream``)."""
        return self.upstream

    def external_inputs(self, cfg: Config, run: RunDir) -> list[str]:
        """Files outside the run directory this stage reads (seeds, labels, inputs)."""
        return []

    def check(self, cfg: Config, run: RunDir) -> None:
        """Validate config and inputs before any work; raise UsageError naming the fix."""

    def plan(self, cfg: Config, run: RunDir) -> list[Part]:
        raise NotImplementedError

    @staticmethod
    def run_part(part: Part, cfg: Config, run: RunDir) -> dict[str, int]:
        """Do one part on a worker; return counts (in, out, rejected, dropped, ...)."""
        raise NotImplementedError

    def live_status(self, client: Client, parts: list[Part]) -> AbstractContextManager:
        """A context that shows what the parts report while they run (a crawl's pages/s, say);
        the default shows nothing beyond the runner's progress bar."""
        return contextlib.nullcontext()

    def finish(self, cfg: Config, run: RunDir, client: Client, manifest: Manifest) -> dict[str, Any]:
        """Optional step after all parts (e.g. a comparison table); returns manifest extras."""
        return {}


def check_upstream(stage: Stage, cfg: Config, run: RunDir) -> dict[str, Manifest]:
    """The manifests of the stages ``stage`` reads; UsageError when one has not completed."""
    out = {}
    for up in stage.upstream_stages(cfg):
        m = Manifest.load(run, up)
        if m.status != "complete":
            raise UsageError(f"stage {stage.name} needs stage {up} first; run `pagecat {up}` (or `pagecat run`)")
        out[up] = m
    return out


def _fingerprint(stage: Stage, cfg: Config, run: RunDir) -> tuple[str, list[str]]:
    inputs, marks = [], []
    for up, m in check_upstream(stage, cfg, run).items():
        inputs.append(f"stage:{up}")
        marks.append(m.output_fingerprint)
    for path in stage.external_inputs(cfg, run):
        inputs.append(path)
        marks.append(file_fingerprint(path))
    return hashlib.sha256("\n".join(marks).encode()).hexdigest()[:16], inputs


def sum_counts(parts: dict[str, dict]) -> dict[str, int]:
    """The numeric counts of every part's dict, summed (``seconds`` and flags left out)."""
    total: dict[str, int] = {}
    for counts in parts.values():
        for k, v in counts.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seconds":
                total[k] = total.get(k, 0) + v
    return total


def summary_line(m: Manifest, unit: str) -> str:
    c = m.counts
    rate = c.get("in", 0) / m.seconds if m.seconds > 0 else 0.0
    extra = "".join(f" {k}={v}" for k, v in c.items() if k not in ("in", "out", "rejected", "dropped"))
    return (f"[{m.stage}] in={c.get('in', 0)} out={c.get('out', 0)} rejected={c.get('rejected', 0)} "
            f"dropped={c.get('dropped', 0)}{extra} in {m.seconds:.1f}s ({rate:.1f} {unit}/s)")


def execute(stage: Stage, cfg: Config, run: RunDir, client: Client, *, force: bool = False,
            progress: bool = True) -> Manifest:
    """Run ``stage``: skip it when unchanged, resume it when interrupted, else start it fresh."""
    stage.check(cfg, run)
    config_hash = cfg.section_hash(*stage.sections)
    fingerprint, inputs = _fingerprint(stage, cfg, run)
    m = Manifest.load(run, stage.name)
    same = m.config_hash == config_hash and m.input_fingerprint == fingerprint
    if same and m.status == "complete" and not force:
        print(f"[{stage.name}] unchanged since {m.finished_at}: skipped ({summary_line(m, stage.unit)})")
        return m
    if not same or force:
        for out in stage.outputs:
            run.remove(out)
        run.remove("rejects", stage.name)
        m = Manifest(stage=stage.name, config_hash=config_hash, input_fingerprint=fingerprint)
    m.status, m.inputs, m.outputs = "running", inputs, [run.url(o) for o in stage.outputs]
    m.started_at = m.started_at or now_iso()
    m.versions = versions()
    m.save(run)

    t0 = time.perf_counter()
    try:
        parts = stage.plan(cfg, run)
    except (UsageError, StageError):
        raise
    except Exception as e:
        raise StageError(stage.name, f"planning: {type(e).__name__}: {e}") from e
    todo = [p for p in parts if p.id not in m.parts]
    if len(todo) < len(parts):
        print(f"[{stage.name}] resuming: {len(parts) - len(todo)} of {len(parts)} parts already done")
    token = f"{config_hash}-{uuid.uuid4().hex[:8]}"
    # one map, one graph update for the scheduler (a submit per part costs one each)
    keys = [f"{stage.name}-{p.id}-{token}" for p in todo]
    futures = dict(zip(client.map(stage.run_part, todo, cfg=cfg, run=run, key=keys, pure=False,
                                  resources=stage.resources, retries=0), todo)) if todo else {}
    bar = tqdm(total=len(parts), initial=len(parts) - len(todo), desc=stage.name, unit="part",
               disable=not progress, leave=False)
    failed: list[tuple[str, BaseException]] = []
    live = stage.live_status(client, todo) if progress and todo else contextlib.nullcontext()
    saved, unsaved = time.perf_counter(), 0
    try:
        # Every part that succeeds is recorded, even after another failed: a re-run redoes only
        # the failed ones.
        with live:
            for fut in as_completed(futures):
                part = futures[fut]
                if fut.status == "error":
                    failed.append((part.id, fut.exception()))
                else:
                    m.parts[part.id] = fut.result()
                    unsaved += 1
                    if time.perf_counter() - saved >= SAVE_EVERY:
                        m.save(run)
                        saved, unsaved = time.perf_counter(), 0
                bar.update(1)
    finally:
        if unsaved:
            m.save(run)
        bar.close()
        futures.clear()
    if failed:
        first_id, err = failed[0]
        more = f" (and {len(failed) - 1} more parts)" if len(failed) > 1 else ""
        raise StageError(stage.name, f"part {first_id}: {type(err).__name__}: {err}{more}; "
                         f"{len(m.parts)} of {len(parts)} parts done, run again to resume")
    m.counts = sum_counts(m.parts)
    try:
        m.extra = stage.finish(cfg, run, client, m) or {}
    except (UsageError, StageError):
        raise
    except Exception as e:
        raise StageError(stage.name, f"finishing: {type(e).__name__}: {e}") from e
    m.seconds = round(time.perf_counter() - t0, 3)
    m.status, m.finished_at = "complete", now_iso()
    m.save(run)
    print(summary_line(m, stage.unit))
    return m
