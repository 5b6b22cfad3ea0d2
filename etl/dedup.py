"""The dedup stage: pages in, the pages worth keeping out, every dropped page explained.

``plan`` reads the few columns the dedup steps need from every pages part (an index: one
small row per page, in (part id, row) order), runs each enabled ``DedupStep`` over the pages
no earlier step dropped, and writes each part's decisions to ``dedup/_decisions/<part id>``.
Each part then copies its kept pages to ``dedup/pages/<part id>.parquet`` and its dropped
ones to ``duplicates/<part id>.parquet`` with the page kept in their place.

A step is one kind of duplicate (``exact`` here; URL and near-duplicate steps plug in the
same way): given the index, it returns which index rows duplicate which kept page.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from pagecat.config import Config
from pagecat.runs import RunDir
from pagecat.schemas import DEDUP_DECISIONS, DUPLICATES, PAGES
from pagecat.stage import Part, Stage


class DedupStep:
    """One kind of duplicate.

    ``decide(index)`` gets a table with ``_pos`` (int64, the page's position in the whole
    index, which is (part id, row) order) and the step's ``columns``, and returns a table of
    ``_pos`` (the dropped pages), ``kept_id`` (string) and ``similarity`` (float32).
    """

    kind: str = ""
    columns: tuple[str, ...] = ()

    def decide(self, index: pa.Table) -> pa.Table:
        raise NotImplementedError


class ExactTextDedup(DedupStep):
    """Pages with the same normalised-text hash: the first in (part id, row) order is kept."""

    kind = "exact"
    columns = ("page_id", "text_hash")

    def decide(self, index: pa.Table) -> pa.Table:
        index = index.filter(pc.is_valid(index["text_hash"]))
        first = index.group_by("text_hash").aggregate([("_pos", "min")])
        joined = index.select(["_pos", "text_hash"]).join(first, "text_hash")
        dups = joined.filter(pc.not_equal(joined["_pos"], joined["_pos_min"]))
        # Map each kept page's global position back to its page_id.
        where = pc.index_in(dups["_pos_min"], value_set=index["_pos"].combine_chunks())
        kept_id = pc.take(index["page_id"], where)
        return pa.table({"_pos": dups["_pos"], "kept_id": kept_id,
                         "similarity": pa.array([1.0] * dups.num_rows, pa.float32())})


def dedup_steps(cfg: Config) -> list[DedupStep]:
    """The enabled steps, in the order they run."""
    return [ExactTextDedup()] if cfg.dedup.exact else []


def part_id_of(path: str) -> str:
    return path.rsplit("/", 1)[-1].removesuffix(".parquet")


def build_index(run: RunDir, files: list[str], columns: list[str]) -> tuple[pa.Table, list[tuple[str, int]]]:
    """The index over all pages parts: ``_pos`` plus ``columns``; and (part id, first _pos) per part."""
    columns = sorted({"page_id", *columns})
    tables, starts, pos = [], [], 0
    for f in files:
        t = run.read_part(f, columns=columns)
        starts.append((part_id_of(f), pos))
        tables.append(t.append_column("_pos", pa.array(range(pos, pos + t.num_rows), pa.int64())))
        pos += t.num_rows
    if not tables:
        return pa.table({"_pos": pa.array([], pa.int64())}), starts
    return pa.concat_tables(tables), starts


def decide_duplicates(index: pa.Table, steps: list[DedupStep]) -> pa.Table:
    """Run the steps in order over the pages still kept; returns _pos, kept_id, kind, similarity."""
    found = []
    alive = index
    for step in steps:
        dec = step.decide(alive.select(["_pos", *step.columns]))
        found.append(dec.append_column("kind", pa.array([step.kind] * dec.num_rows, pa.string())))
        alive = alive.filter(pc.invert(pc.is_in(alive["_pos"], value_set=dec["_pos"].combine_chunks())))
    if not found:
        return pa.table({"_pos": pa.array([], pa.int64()), "kept_id": pa.array([], pa.string()),
                         "similarity": pa.array([], pa.float32()), "kind": pa.array([], pa.string())})
    return pa.concat_tables(found)


class DedupStage(Stage):
    """``pages/`` to ``dedup/pages/`` (schema PAGES) and ``duplicates/`` (schema DUPLICATES)."""

    name = "dedup"
    sections = ("dedup",)
    upstream = ("parse",)
    outputs = ("dedup", "duplicates")
    unit = "pages"

    def plan(self, cfg: Config, run: RunDir) -> list[Part]:
        files = run.list_files("pages", suffix=".parquet")
        steps = dedup_steps(cfg)
        columns = sorted({c for s in steps for c in s.columns})
        index, starts = build_index(run, files, columns)
        decisions = decide_duplicates(index, steps)
        ends = [s for _, s in starts[1:]] + [index.num_rows]
        parts = []
        for f, (pid, start), end in zip(files, starts, ends):
            mine = decisions.filter(pc.and_(pc.greater_equal(decisions["_pos"], start),
                                            pc.less(decisions["_pos"], end)))
            table = pa.table({"row": pc.subtract(mine["_pos"], start), "kept_id": mine["kept_id"],
                              "kind": mine["kind"], "similarity": mine["similarity"]}, schema=DEDUP_DECISIONS)
            path = run.path("dedup", "_decisions", f"{pid}.parquet")
            run.write_table(path, table)
            parts.append(Part(id=pid, inputs=[f], args={"decisions": path}))
        return parts

    @staticmethod
    def run_part(part: Part, cfg: Config, run: RunDir) -> dict[str, int]:
        pages = run.read_part(part.inputs[0]).cast(PAGES)
        dec = run.read_part(part.args["decisions"]).sort_by("row")
        dropped = pc.is_in(pa.array(range(pages.num_rows), pa.int64()), value_set=dec["row"].combine_chunks())
        kept = pages.filter(pc.invert(dropped))
        rows = dec["row"]
        dups = pa.table({"page_id": pc.take(pages["page_id"], rows), "url": pc.take(pages["url"], rows),
                         "kept_id": dec["kept_id"], "kind": dec["kind"], "similarity": dec["similarity"]},
                        schema=DUPLICATES)
        run.write_table(run.path("dedup", "pages", f"{part.id}.parquet"), kept)
        run.write_table(run.path("duplicates", f"{part.id}.parquet"), dups)
        return {"in": pages.num_rows, "out": kept.num_rows, "rejected": 0, "dropped": dups.num_rows}
