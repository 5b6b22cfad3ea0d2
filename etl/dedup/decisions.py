"""What the dedup stage's ``finish`` decided, saved before its apply tasks run.

``dedup/_decisions.arrow`` holds a row per dropped page (schema DECISIONS_FILE: the part's
decisions as the apply task takes them, and the part index) and, in its metadata, the counts
``finish`` reports. Each apply task deletes its part's pass-1 files once its outputs are
written, so a ``finish`` interrupted while applying could not find its duplicates again: it
applies again from this file instead, which ``finish`` deletes last.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from pagecat.runs import RunDir
from pagecat.schemas import DEDUP_DECISIONS

from .shuffle import run_bounds

DECISIONS_PATH = "dedup/_decisions.arrow"
DECISIONS_FILE = DEDUP_DECISIONS.append(pa.field("part", pa.int64()))
STATS_KEY = b"pagecat.dedup_stats"


def save_decisions(run: RunDir, decisions: pa.Table, stats: dict[str, Any]) -> None:
    """``decisions`` (schema DECISIONS_FILE) and the finish's ``stats``, written atomically."""
    decisions = decisions.replace_schema_metadata({STATS_KEY: json.dumps(stats).encode()})
    with run.atomic_sink(run.path(DECISIONS_PATH)) as sink, pa.ipc.new_file(sink, decisions.schema) as writer:
        writer.write_table(decisions)


def load_decisions(run: RunDir) -> tuple[pa.Table, dict[str, Any]] | None:
    """What ``save_decisions`` wrote, or None when there is no decisions file."""
    if not run.exists(DECISIONS_PATH):
        return None
    with run.fs.open(run.path(DECISIONS_PATH), "rb") as fh:
        table = pa.ipc.open_file(fh).read_all()
    return table.replace_schema_metadata(None), json.loads(table.schema.metadata[STATS_KEY])


def by_part(decisions: pa.Table) -> dict[int, pa.Table]:
    """Decisions (schema DECISIONS_FILE) per part index, without the part column (schema
    DEDUP_DECISIONS), each part's in the order given."""
    part = decisions.column("part").to_numpy()
    order = np.argsort(part, kind="stable")
    bounds = run_bounds(part[order])
    table = decisions.drop_columns(["part"])
    return {int(part[order[lo]]): table.take(order[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])}
