"""The label stage: deduplicated pages to docs, tagged from a labels file where one matches.

A doc is one page here (``label.unit`` page, or entry for table inputs). ``LabelsFile``
reads and checks the labels file (CSV or Parquet) once per process and gives a lookup from
a join key to (label, group, held out). The key is the page's URL (both sides canonicalised
the same way), its crawl seed id (``url_id``) or its registered domain. A doc whose labels
row is held out (``holdout_column == holdout_value``) keeps its group but no label: it is
what the trained model is asked about later.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import fsspec
import pyarrow as pa

from pagecat.config import Config, LabelSettings
from pagecat.errors import UsageError
from pagecat.runs import RunDir, file_fingerprint
from pagecat.schemas import DOCS
from pagecat.stage import Part, Stage
from pagecat.urls import MalformedURL, canonicalize, host_of, registered_domain

DOCS_VERSION = "v1"


def canonical_url(url: str | None) -> str | None:
    """The URL as the labels join compares it: the crawler's canonical form (``pagecat.urls``),
    less a trailing slash. ``HTTP://Ex.com:80/a/#x`` -> ``http://ex.com/a``."""
    if not url or not url.strip():
        return None
    try:
        parts = urlsplit(canonicalize(url.strip()))
    except MalformedURL:
        return url.strip()
    return urlunsplit(parts._replace(path=parts.path.rstrip("/")))


def domain_key(value: str | None) -> str | None:
    """A registered domain from a domain, host or URL: ``https://www.Ex.co.uk/a`` -> ``ex.co.uk``."""
    if not value or not value.strip():
        return None
    value = value.strip()
    host = host_of(value) if "://" in value else value.split("/")[0].split(":")[0].lower()
    return registered_domain(host) if host else None


def _plain_key(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


# join_on -> how a labels-file value becomes a key, and the pages column it is compared with.
KEYS = {"url": (canonical_url, "url"), "url_id": (_plain_key, "seed_id"), "domain": (domain_key, "domain")}


@dataclass(frozen=True)
class LabelRow:
    label: str | None
    group: str | None
    held_out: bool


class LabelsFile:
    """A labels file checked against ``LabelSettings``; ``lookup`` maps join keys to ``LabelRow``.

    Raises UsageError naming the file and the rows to fix: missing file or column, a key given
    conflicting labels, a label outside ``classes``. Rows with an empty key or label carry
    nothing and are skipped (a labels file may list pages it has no label for).
    """

    def __init__(self, settings: LabelSettings):
        self.settings = settings
        self.path = settings.labels
        self.lookup: dict[str, LabelRow] = {}

    def load(self) -> LabelsFile:
        s = self.settings
        if not self.path:  # no labels file: every doc is untagged
            return self
        columns = self._read()
        where = f"label.labels: {self.path}"
        wanted = {"label.join_on": s.join_on, "label.label_column": s.label_column,
                  "label.group_column": s.group_column, "label.holdout_column": s.holdout_column}
        for field_name, col in wanted.items():
            if col is not None and col not in columns:
                raise UsageError(f"{where} has no column {col!r} ({field_name}); columns found: "
                                 f"{', '.join(columns)}. Add the column or set {field_name}")
        to_key = KEYS[s.join_on][0]
        classes = set(s.classes)
        first_row: dict[str, int] = {}
        for i in range(len(columns[s.join_on])):
            row = i + 1  # 1-based data row, header excluded
            key = to_key(columns[s.join_on][i])
            label = _plain_key(columns[s.label_column][i])
            if key is None or label is None:
                continue
            if classes and label not in classes:
                raise UsageError(f"{where} row {row} has label {label!r}, not one of label.classes "
                                 f"({', '.join(s.classes)}); fix the row or add the class")
            group = _plain_key(columns[s.group_column][i]) if s.group_column else None
            held = s.holdout_column is not None and (columns[s.holdout_column][i] or "").strip() == s.holdout_value
            seen = self.lookup.get(key)
            if seen is not None:
                if seen.label != label:
                    raise UsageError(f"{where} rows {first_row[key]} and {row} give {key!r} different labels "
                                     f"({seen.label!r}, {label!r}); keep one")
                continue
            first_row[key] = row
            self.lookup[key] = LabelRow(label=label, group=group, held_out=held)
        return self

    def _read(self) -> dict[str, list[str | None]]:
        """Every column of the file as strings (None for empty cells)."""
        fs, p = fsspec.core.url_to_fs(self.path)
        if not fs.exists(p):
            raise UsageError(f"label.labels: {self.path} not found; fix the path or leave label.labels unset")
        try:
            with fs.open(p, "rb") as fh:
                if p.lower().endswith(".parquet"):
                    import pyarrow.parquet as pq

                    table = pq.read_table(fh)
                else:
                    import pyarrow.csv as pacsv

                    head = pacsv.open_csv(fh).schema.names
                    fh.seek(0)
                    table = pacsv.read_csv(fh, convert_options=pacsv.ConvertOptions(
                        column_types={n: pa.string() for n in head}, strings_can_be_null=True, null_values=[""]))
        except (pa.ArrowException, OSError) as e:
            raise UsageError(f"label.labels: {self.path} cannot be read as CSV or Parquet ({e}); "
                             "fix the file") from None
        return {name: [None if v is None else str(v) for v in table.column(name).to_pylist()]
                for name in table.column_names}


@functools.lru_cache(maxsize=4)
def _load_labels(settings_items: tuple, fingerprint: str) -> LabelsFile:
    settings = LabelSettings(**{k: list(v) if k == "classes" else v for k, v in settings_items})
    return LabelsFile(settings).load()


def load_labels(settings: LabelSettings) -> LabelsFile:
    """The checked labels file, read once per process (per file version and settings)."""
    items = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(vars(settings).items()))
    return _load_labels(items, file_fingerprint(settings.labels) if settings.labels else "")


def build_docs(pages: pa.Table, labels: LabelsFile, join_on: str) -> tuple[pa.Table, dict[str, int]]:
    """Pages (PAGES columns) to docs (DOCS) and the counts tagged / untagged / held_out."""
    to_key, column = KEYS[join_on]
    keys = [to_key(v) for v in pages.column(column).to_pylist()]
    found = [labels.lookup.get(k) if k is not None else None for k in keys]
    label = [r.label if r is not None and not r.held_out else None for r in found]
    docs = pa.table({
        "doc_id": pages["page_id"], "url": pages["url"], "host": pages["host"], "title": pages["title"],
        "text": pages["text"], "label": pa.array(label, pa.string()),
        "label_source": pa.array(["file" if v is not None else None for v in label], pa.string()),
        "group": pa.array([r.group if r is not None else None for r in found], pa.string()),
    }, schema=DOCS)
    held = sum(1 for r in found if r is not None and r.held_out)
    tagged = sum(1 for v in label if v is not None)
    return docs, {"tagged": tagged, "untagged": docs.num_rows - tagged, "held_out": held}


class LabelStage(Stage):
    """``dedup/pages/`` to ``docs/v1/<part id>.parquet`` (schema DOCS)."""

    name = "label"
    sections = ("label",)
    upstream = ("dedup",)
    outputs = ("docs",)
    unit = "docs"

    def external_inputs(self, cfg: Config, run: RunDir) -> list[str]:
        return [cfg.label.labels] if cfg.label.labels else []

    def check(self, cfg: Config, run: RunDir) -> None:
        if cfg.label.unit == "site":
            raise UsageError("label.unit site: not supported yet; use page or entry")
        load_labels(cfg.label)

    def plan(self, cfg: Config, run: RunDir) -> list[Part]:
        files = run.list_files("dedup", "pages", suffix=".parquet")
        return [Part(id=f.rsplit("/", 1)[-1].removesuffix(".parquet"), inputs=[f]) for f in files]

    @staticmethod
    def run_part(part: Part, cfg: Config, run: RunDir) -> dict[str, int]:
        pages = run.read_part(part.inputs[0], columns=["page_id", "url", "host", "domain", "title", "text",
                                                       "seed_id"])
        docs, tags = build_docs(pages, load_labels(cfg.label), cfg.label.join_on)
        run.write_table(run.path("docs", DOCS_VERSION, f"{part.id}.parquet"), docs)
        return {"in": pages.num_rows, "out": docs.num_rows, "rejected": 0, "dropped": 0, **tags}

    def finish(self, cfg: Config, run: RunDir, client, manifest) -> dict:
        labels = run.read_dataset("docs", DOCS_VERSION, columns=["label"], schema=DOCS)["label"]
        counts = Counter(v for v in labels.to_pylist() if v is not None)
        tagged = sum(counts.values())
        return {"docs_version": DOCS_VERSION, "classes": sorted(counts), "tagged": tagged,
                "untagged": len(labels) - tagged, "held_out": manifest.counts.get("held_out", 0),
                "class_counts": dict(sorted(counts.items()))}
