"""The review queue a person fills in, and reading it back.

``review/queue.csv`` (written by every label run that queues docs): doc_id, url, title, snippet,
candidates (each vote as ``label (source confidence)``), current_label, and an empty ``label``
column. A person writes a label into that column for the docs they decide (leaving others empty)
and names the file as ``label.review_file``; the next label run gives those docs the person's
label (source ``person``), above every other source.

``ReviewFile.load`` checks the whole file before anything is applied: a missing column, a label
outside the known labels, a doc id given two labels, each raise one UsageError naming the rows.
Doc ids the docs do not have are checked by the stage (``unknown_ids``) against every part.
"""

from __future__ import annotations

import csv
import functools
import io

import fsspec

from pagecat.errors import UsageError
from pagecat.runs import file_fingerprint

from .votes import Vote

QUEUE_COLUMNS = ["doc_id", "url", "title", "snippet", "candidates", "current_label", "label"]
SNIPPET_CHARS = 300
MAX_NAMED = 5  # rows named in one message


def _rows_named(rows: list[int]) -> str:
    more = f" and {len(rows) - MAX_NAMED} more" if len(rows) > MAX_NAMED else ""
    return ", ".join(str(r) for r in rows[:MAX_NAMED]) + more


def queue_row(doc: dict, votes: list[Vote], current: str | None) -> dict:
    text = " ".join((doc.get("text") or "").split())
    return {"doc_id": doc["doc_id"], "url": doc.get("url") or "", "title": doc.get("title") or "",
            "snippet": text[:SNIPPET_CHARS],
            "candidates": "; ".join(f"{v.label} ({v.source} {v.confidence:.2f})" for v in votes),
            "current_label": current or "", "label": ""}


def queue_csv(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=QUEUE_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(sorted(rows, key=lambda r: r["doc_id"]))
    return buf.getvalue().encode()


class ReviewFile:
    """A filled review queue: ``labels`` {doc_id: label} and ``rows`` {doc_id: 1-based data row}."""

    def __init__(self, path: str, known_labels: set[str]):
        self.path = path
        self.known_labels = known_labels
        self.labels: dict[str, str] = {}
        self.rows: dict[str, int] = {}

    def load(self) -> ReviewFile:
        where = f"label.review_file: {self.path}"
        fs, p = fsspec.core.url_to_fs(self.path)
        if not fs.exists(p):
            raise UsageError(f"{where} not found; fix the path or leave label.review_file unset")
        with fs.open(p, "rb") as fh:
            text = fh.read().decode("utf-8-sig", errors="replace")
        reader = csv.DictReader(io.StringIO(text))
        columns = reader.fieldnames or []
        missing = [c for c in ("doc_id", "label") if c not in columns]
        if missing:
            raise UsageError(f"{where} has no column {missing[0]!r}; columns found: {', '.join(columns) or 'none'}. "
                             "Keep the queue's doc_id and label columns")
        unknown, conflicts, no_id = [], [], []
        for i, row in enumerate(reader, start=1):
            label = (row.get("label") or "").strip()
            doc_id = (row.get("doc_id") or "").strip()
            if not label:
                continue  # not reviewed
            if not doc_id:
                no_id.append(i)
            elif self.known_labels and label not in self.known_labels:
                unknown.append(i)
            elif doc_id in self.labels and self.labels[doc_id] != label:
                conflicts.append(i)
            else:
                self.labels[doc_id] = label
                self.rows.setdefault(doc_id, i)
        if no_id:
            raise UsageError(f"{where} rows {_rows_named(no_id)} have a label but no doc_id; restore the doc_id")
        if unknown:
            raise UsageError(f"{where} rows {_rows_named(unknown)} have a label that is not one of "
                             f"{', '.join(sorted(self.known_labels))}; fix those rows or add the class "
                             "to label.classes")
        if conflicts:
            raise UsageError(f"{where} rows {_rows_named(conflicts)} give a doc_id a second, different label; "
                             "keep one label per doc")
        return self

    def check_ids(self, found: set[str]) -> None:
        """UsageError naming the rows whose doc_id is not among ``found`` (every doc of the run)."""
        bad = sorted(self.rows[d] for d in self.labels if d not in found)
        if bad:
            raise UsageError(f"label.review_file: {self.path} rows {_rows_named(bad)} name doc ids this run has "
                             "no doc for; fix those rows (nothing was applied)")

    def vote(self, doc_id: str) -> Vote | None:
        label = self.labels.get(doc_id)
        return Vote("person", label, 1.0) if label is not None else None


@functools.lru_cache(maxsize=2)
def _load_review(path: str, known: tuple[str, ...], fingerprint: str) -> ReviewFile:
    return ReviewFile(path, set(known)).load()


def load_review(path: str, known_labels: set[str]) -> ReviewFile:
    """The checked review file, read once per process (per file version)."""
    return _load_review(path, tuple(sorted(known_labels)), file_fingerprint(path))
